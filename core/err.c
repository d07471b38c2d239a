/*
 * err.c - strings for lww_err. Kept as a table indexed by code so that a
 * new code without a string fails to compile the static assertion below.
 */
#include <errno.h>
#include <stddef.h>

#include "err.h"
#include "limits.h"

/* The size errors below spell these limits: change both together. */
_Static_assert(LWW_KEY_MIN == 1 && LWW_KEY_MAX == 1024 &&
                   LWW_VAL_MAX == 1048576,
               "err.c's size messages name the limits of limits.h");

static const char *const lww_errstr[] = {
    [LWW_OK] = "ok",
    [LWW_EINVAL] = "invalid argument",
    [LWW_ENOMEM] = "out of memory",
    [LWW_EPROTO] = "malformed message",
    [LWW_EVERSION] = "unsupported format version",
    [LWW_EKEYSIZE] = "key must be 1 to 1024 bytes",
    [LWW_EVALSIZE] = "value longer than 1048576 bytes",
    [LWW_ETOOBIG] = "message too large",
    [LWW_ENOTFOUND] = "not found",
    [LWW_EDRIFT] = "stamp too far ahead of local clock",
    [LWW_EBADSIG] = "bad signature",
    [LWW_EUNTRUSTED] = "signer not trusted",
    [LWW_EFORGED] = "entry stamped with another node's id",
    [LWW_EFULL] = "store full",
    [LWW_EIO] = "I/O error",
    [LWW_ECORRUPT] = "corrupt record",
    [LWW_EEXIST] = "file exists",
    [LWW_EPERM] = "file permissions too open or wrong owner",
    [LWW_ESYNTAX] = "syntax error",
    [LWW_EOVERFLOW] = "counter overflow",
    [LWW_EUNKNOWN] = "unknown request type",
    [LWW_EREADONLY] = "client is read-only",
    [LWW_EBUSY] = "node busy",
    [LWW_ECLOSED] = "node shutting down",
    [LWW_ENOENT] = "no such file",
    [LWW_ESTALE] = "request timestamp outside the freshness window",
    [LWW_EREPLAY] = "request replayed",
    [LWW_EAUTH] = "client not authorised",
    [LWW_ENOSPC] = "disk full",
    [LWW_ELOCKED] = "data directory in use by another lwwd",
    [LWW_ECLOCK] = "this node's clock is wrong; fix time sync",
};

_Static_assert(sizeof(lww_errstr) / sizeof(lww_errstr[0]) == LWW_ERR_LAST + 1,
               "every lww_err needs a string");

lww_err
lww_err_from_errno(int e)
{
	switch (e) {
	case 0:
		return LWW_OK;
	case ENOENT:
		return LWW_ENOENT;
	case EEXIST:
		return LWW_EEXIST;
	case EACCES:
	case EPERM:
	case EROFS:
		return LWW_EPERM;
	case ENOSPC:
	case EDQUOT:
		return LWW_ENOSPC;
	case ENOMEM:
		return LWW_ENOMEM;
	default:
		return LWW_EIO;
	}
}

const char *
lww_strerror(int err)
{
	if (err < 0 || err > LWW_ERR_LAST || lww_errstr[err] == NULL) {
		return "unknown error";
	}
	return lww_errstr[err];
}
