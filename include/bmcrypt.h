/* bmcrypt: authenticated encryption of Sophgo .bmodel files (docs/FORMAT.md), as a plain C
 * library, libbmcrypt.so.
 *
 * Two ways to use it:
 *
 *  1. As the vendor's cipher plugin. The library exports `decrypt` and `encrypt` with the
 *     signature the vendor tools expect, so that
 *         model_tool --encrypt -model IN -net N1,N2 -lib libbmcrypt.so -o OUT
 *         bmrt_load_bmodel_with_decrypt_lib(p_bmrt, path, "libbmcrypt.so")
 *     work unchanged. Keys then come from the environment: BMCRYPT_KEY_FILE (a key file,
 *     docs/keys.md, or an X25519 identity file), or else BMCRYPT_PASSPHRASE, read when a key is
 *     needed and nothing was registered.
 *
 *  2. From your own program: register keys, then bmcrypt_load_bmodel() verifies the whole file
 *     (every envelope, every weight's SHA-256, the clear-region digest) before the runtime sees
 *     it, and loads it with the decrypt callback.
 *
 * Conventions: functions returning bool or a pointer report failure with false/NULL and leave a
 * message in bmcrypt_last_error() and a code in bmcrypt_last_error_code(), both per thread and
 * valid until the next bmcrypt call on that thread. Returned buffers come from malloc(): release
 * them with free() or bmcrypt_free(). All functions are thread-safe. No function keeps a pointer
 * it was given.
 *
 *     #include <bmcrypt.h>      // cc app.c $(pkg-config --cflags --libs bmcrypt)
 *     if (!bmcrypt_register_key_file("model.key") || !bmcrypt_load_bmodel(p_bmrt, "m.bmodel"))
 *       fprintf(stderr, "bmcrypt: %s\n", bmcrypt_last_error());
 */
#ifndef BMCRYPT_H
#define BMCRYPT_H

#include <stdbool.h>
#include <stdint.h>

#if defined(BMCRYPT_BUILDING_LIBRARY)
#define BMCRYPT_API __attribute__((visibility("default")))
#else
#define BMCRYPT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes of bmcrypt_last_error_code(). */
enum bmcrypt_status {
  BMCRYPT_OK = 0,
  BMCRYPT_E_BAD_ARGUMENT = 1,        /* NULL, empty or otherwise unusable argument */
  BMCRYPT_E_NOT_A_BMODEL = 2,        /* no bmodel magic */
  BMCRYPT_E_TRUNCATED = 3,           /* shorter than its own header says */
  BMCRYPT_E_CORRUPT = 4,             /* malformed, or longer than its header says */
  BMCRYPT_E_UNSUPPORTED_VERSION = 5, /* written by a newer bmcrypt */
  BMCRYPT_E_WRONG_KEY = 6,           /* no registered key opens it */
  BMCRYPT_E_TAMPERED = 7,            /* the right key, but authentication failed */
  BMCRYPT_E_NO_KEY = 8,              /* nothing registered, nothing in the environment */
  BMCRYPT_E_KEY_FILE = 9,            /* a key file that cannot be used */
  BMCRYPT_E_NOT_ENCRYPTED = 10,      /* a plain bmodel */
  BMCRYPT_E_FOREIGN_ENCRYPTED = 11,  /* encrypted by another tool */
  BMCRYPT_E_IO = 12,                 /* a path that cannot be read */
  BMCRYPT_E_RUNTIME = 13,            /* vendor runtime missing, or it refused the file */
  BMCRYPT_E_INTERNAL = 14,           /* out of memory, or a bug */
  /* Licences (docs/FORMAT.md §8.5): the file demands one, and no registered licence passes. */
  BMCRYPT_E_NO_LICENCE = 15,         /* none registered */
  BMCRYPT_E_LICENCE_CORRUPT = 16,    /* a licence file that is not a well-formed licence */
  BMCRYPT_E_LICENCE_SIGNATURE = 17,  /* signed by another key than the file names, or forged */
  BMCRYPT_E_LICENCE_OTHER_FILE = 18, /* a licence for another model file */
  BMCRYPT_E_LICENCE_EXPIRED = 19,    /* past its not-after time (the host's clock) */
  BMCRYPT_E_LICENCE_OTHER_DEVICE = 20 /* bound to serial numbers; this device's is not one */
};

/* ---- keys ------------------------------------------------------------------------------------
 * Several keys may be registered; each file names the one it needs by key id (a version 2 file
 * lists one key id per recipient, docs/FORMAT.md §8.2). Keys are copied into wiped-on-release
 * memory. */

/* A raw 32-byte user key (key source 1, recipient type 1). */
BMCRYPT_API bool bmcrypt_register_key(const uint8_t key[32]);
/* A key file (docs/keys.md) or an identity file (an X25519 secret, docs/FORMAT.md §8.3): the
 * file's length and magic say which. Refused if group or others may access it. */
BMCRYPT_API bool bmcrypt_register_key_file(const char* path);
/* An identity file (the X25519 secret of a device, written by `bmcrypt keygen --x25519`); the
 * same checks as bmcrypt_register_key_file, and like it also accepts a key file. */
BMCRYPT_API bool bmcrypt_register_identity_file(const char* path);
/* A raw 32-byte X25519 secret (the identity of recipient type 3). */
BMCRYPT_API bool bmcrypt_register_identity(const uint8_t secret[32]);
/* A passphrase (UTF-8, non-empty; key source 2). scrypt runs once per file salt, lazily. */
BMCRYPT_API bool bmcrypt_register_passphrase(const char* passphrase);
/* Forgets and wipes every registered key and every cached data key; the next `encrypt` starts a
 * new file. */
BMCRYPT_API void bmcrypt_clear_keys(void);

/* ---- licences (docs/FORMAT.md §8.5) ----------------------------------------------------------
 * A file whose header demands a licence opens (bmcrypt_decrypt of its header envelope,
 * bmcrypt_verify_file, bmcrypt_load_bmodel) only when one registered licence is signed by the key
 * the file names, is for that file, is not expired, and lists this device's serial number if it
 * lists any. Otherwise the call fails with one of the BMCRYPT_E_*LICENCE* codes. When nothing was
 * registered, BMCRYPT_LICENSE_FILE is read (one path, or several separated by ':').
 * Licences and serial numbers are not secrets: this is policy, enforced by this library. */

/* A licence file (`bmcrypt license issue`). Refused with BMCRYPT_E_LICENCE_CORRUPT if malformed;
 * its signature is checked when a file needs it. */
BMCRYPT_API bool bmcrypt_register_licence_file(const char* path);
/* The same from memory (`len` bytes of a licence file). */
BMCRYPT_API bool bmcrypt_register_licence(const uint8_t* licence, uint64_t len);
/* The device's serial number, for licences bound to devices; NULL forgets it. Without it,
 * bmcrypt_load_bmodel asks libbmlib (bm_get_sn on the runtime's device); the vendor's
 * bmrt_load_bmodel_with_decrypt_lib path has no device handle, so call this first there. The
 * simulator has no serial number (bm_get_sn returns BM_NOT_SUPPORTED). */
BMCRYPT_API bool bmcrypt_set_device_sn(const char* sn);
/* Forgets every registered licence and the serial number. */
BMCRYPT_API void bmcrypt_clear_licences(void);

/* ---- errors ---------------------------------------------------------------------------------- */

/* Message of the last failing call on this thread ("" after a success). Never NULL. */
BMCRYPT_API const char* bmcrypt_last_error(void);
/* enum bmcrypt_status of the last call on this thread. */
BMCRYPT_API int bmcrypt_last_error_code(void);

/* ---- envelopes: the vendor callback contract -------------------------------------------------
 * bmcrypt_decrypt takes one envelope (the exact bytes of one encrypted region) and returns its
 * plaintext, after every segment authenticated: for the header envelope exactly the 56-byte
 * header tail (its 44 reserved bytes checked to be zero), for the FlatBuffer envelope the
 * FlatBuffer without the 64-byte manifest (and, in version 2, without the restore record), for
 * weights and generic envelopes all of it. *out_len receives the length (0 on failure).
 *
 * Version 2 files keep their keys in the header envelope only: its data key is kept (per file,
 * for the 64 files opened last; wiped by bmcrypt_clear_keys) to open the FlatBuffer and weight
 * envelopes that follow, as the vendor runtime passes them. A FlatBuffer or weight envelope of a
 * file whose header envelope was not opened first fails with BMCRYPT_E_WRONG_KEY.
 *
 * bmcrypt_encrypt seals `in` as one generic (kind 0) envelope of a process-wide "file": a random
 * file_id and data key created by the first call and wrapped under the first registered key (or
 * BMCRYPT_KEY_FILE / BMCRYPT_PASSPHRASE). This is what model_tool's -lib needs; bmcrypt's own
 * encrypt writes typed envelopes with a manifest instead (docs/FORMAT.md §5). An empty input is
 * valid (in may then be NULL). */
BMCRYPT_API uint8_t* bmcrypt_decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len);
BMCRYPT_API uint8_t* bmcrypt_encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len);
/* The same two functions under the names the vendor tools look up with dlsym. */
BMCRYPT_API uint8_t* decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len);
BMCRYPT_API uint8_t* encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len);
/* Releases (and wipes) a buffer returned by this library. free() works too. NULL is ignored. */
BMCRYPT_API void bmcrypt_free(void* p);

/* ---- whole files ----------------------------------------------------------------------------- */

/* What a file is, from its first bytes and without a key: 0 a plain bmodel, 1 encrypted by
 * bmcrypt, 2 encrypted by another tool (for instance model_tool's -lib without bmcrypt, or an
 * in-place cipher). -1 when it is no bmodel or cannot be read (see bmcrypt_last_error()). Nothing
 * is verified: a 1 still needs bmcrypt_verify_file or bmcrypt_load_bmodel to be trusted. */
BMCRYPT_API int bmcrypt_file_state(const char* path);
/* Verifies an encrypted bmodel completely with the registered keys (docs/FORMAT.md §6, with the
 * FlatBuffer and layout rules of §6.1): the same verdict as `bmcrypt verify`. A path that is not
 * a regular file (FIFO, socket, device, directory) is refused with BMCRYPT_E_IO ("... is not a
 * regular file") before any open that could block. */
BMCRYPT_API bool bmcrypt_verify_file(const char* path);
/* Verifies the file like bmcrypt_verify_file, then loads it into p_bmrt (from bmrt_create) with
 * the vendor runtime's bmrt_load_bmodel_with_decrypt and bmcrypt's decrypt callback. A wrong key
 * or a modified file is refused before the runtime reads it. The runtime is looked up at run
 * time in the process (libbmrt.so must already be loaded, or be on the library path). */
BMCRYPT_API bool bmcrypt_load_bmodel(void* p_bmrt, const char* path);

/* ---- misc ------------------------------------------------------------------------------------ */

/* Upper bound on threads for large envelopes; 0 (the default) means all cores. */
BMCRYPT_API void bmcrypt_set_threads(unsigned n);
/* Library version, e.g. "0.1.0". */
BMCRYPT_API const char* bmcrypt_version(void);

#ifdef __cplusplus
}
#endif

#endif /* BMCRYPT_H */
