/*
 * err.h - the one error enum of liblww, and its strings.
 *
 * Every fallible function in core/ returns an lww_err: LWW_OK (0) or a small
 * positive code. The codes travel on the wire in API replies, so their
 * values never change; new codes are only appended.
 */
#ifndef LWW_ERR_H
#define LWW_ERR_H

typedef enum lww_err {
	LWW_OK = 0,
	LWW_EINVAL = 1,    /* bad argument from our own caller */
	LWW_ENOMEM = 2,    /* allocation failed */
	LWW_EPROTO = 3,    /* malformed bytes: truncated, trailing, bad field */
	LWW_EVERSION = 4,  /* unknown format version */
	LWW_EKEYSIZE = 5,  /* key empty or longer than LWW_KEY_MAX */
	LWW_EVALSIZE = 6,  /* value longer than LWW_VAL_MAX */
	LWW_ETOOBIG = 7,   /* message or batch over its limit */
	LWW_ENOTFOUND = 8, /* no such key, or the key is removed */
	LWW_EDRIFT = 9,    /* stamp too far ahead of our wall clock */
	LWW_EBADSIG = 10,  /* signature does not verify */
	LWW_EUNTRUSTED = 11, /* signer is not in the trust file */
	LWW_EFORGED = 12,    /* entry stamped with another node's id */
	LWW_EFULL = 13,      /* store (LMDB map) is full */
	LWW_EIO = 14,        /* I/O error from the file system or LMDB */
	LWW_ECORRUPT = 15,   /* a stored record does not decode */
	LWW_EEXIST = 16,     /* file exists, will not overwrite */
	LWW_EPERM = 17,      /* file permissions too open, or not ours */
	LWW_ESYNTAX = 18,    /* trust or key file does not parse */
	LWW_EOVERFLOW = 19,  /* clock or counter would overflow */
	LWW_EUNKNOWN = 20,   /* unknown request or message type */
	LWW_EREADONLY = 21,  /* client may only read */
	LWW_EBUSY = 22,      /* node is overloaded; retry */
	LWW_ECLOSED = 23,    /* node is shutting down */
	LWW_ENOENT = 24,     /* file does not exist */
	LWW_ESTALE = 25,  /* request timestamp outside the freshness window */
	LWW_EREPLAY = 26, /* request nonce already seen */
	LWW_EAUTH = 27,   /* request not signed by a listed client */
	LWW_ENOSPC = 28,  /* the file system is full (or over quota) */
	LWW_ELOCKED = 29, /* the data directory is in use by another process */
	LWW_ECLOCK = 30,  /* this node's clock is wrong: local writes fenced */
} lww_err;

#define LWW_ERR_LAST LWW_ECLOCK

/* A static, one-line English description of err; never NULL. */
const char *lww_strerror(int err);

/* The lww_err for a file-system errno: ENOENT, EEXIST, permissions (and a
 * read-only file system), a full disk or quota (LWW_ENOSPC,
 * never LWW_EFULL, which is the store's own capacity), no memory;
 * anything else is LWW_EIO. */
lww_err lww_err_from_errno(int e);

#endif /* LWW_ERR_H */
