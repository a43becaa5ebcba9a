/* bmcrypt-verify: check encrypted .bmodel files on a device, without Python.
 *
 *   BMCRYPT_KEY_FILE=model.key bmcrypt-verify FILE...
 *
 * Every byte of each FILE is authenticated with the key (libbmcrypt's bmcrypt_verify_file): the
 * header, the FlatBuffer, every weight region and the digest of the clear parts. Nothing is
 * written. The key comes from BMCRYPT_KEY_FILE (a key file from `bmcrypt keygen`), or else from
 * BMCRYPT_PASSPHRASE.
 *
 * Prints "FILE: OK" per good file on stdout; a failure prints one "error:" and one "hint:" line
 * on stderr. Exit status: 0 when every file verified, else the bmcrypt_status code of the first
 * failure (bmcrypt.h: 6 wrong key, 7 tampered, 3 truncated, ...), 64 for a usage error.
 *
 * Built from the SDK alone:  cc bmcrypt-verify.c $(pkg-config --cflags --libs bmcrypt)
 */
#include <bmcrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_USAGE = 64 };

static const char* hint_for(int code) {
  switch (code) {
    case BMCRYPT_E_WRONG_KEY:
      return "use the key the file was encrypted with (`bmcrypt inspect` shows its key id)";
    case BMCRYPT_E_TAMPERED:
      return "do not use this file; restore it from a trusted copy";
    case BMCRYPT_E_TRUNCATED:
      return "the file is shorter than its header says; copy it again";
    case BMCRYPT_E_NO_KEY:
      return "set BMCRYPT_KEY_FILE to the key file the model was encrypted with";
    case BMCRYPT_E_KEY_FILE:
      return "BMCRYPT_KEY_FILE must name a key file from `bmcrypt keygen`, readable by its owner only (chmod 600)";
    case BMCRYPT_E_NOT_ENCRYPTED:
      return "the file is a plain bmodel: there is nothing to verify";
    case BMCRYPT_E_FOREIGN_ENCRYPTED:
      return "the file was encrypted by another tool; bmcrypt cannot check it";
    case BMCRYPT_E_UNSUPPORTED_VERSION:
      return "the file needs a newer bmcrypt";
    case BMCRYPT_E_IO:
      return "check the path and its permissions";
    case BMCRYPT_E_NO_LICENCE:
      return "set BMCRYPT_LICENSE_FILE to the model's licence file (from its vendor)";
    case BMCRYPT_E_LICENCE_CORRUPT:
      return "BMCRYPT_LICENSE_FILE must name licence files from `bmcrypt license issue`";
    case BMCRYPT_E_LICENCE_SIGNATURE:
      return "the licence was not issued for this model by its vendor, or was altered";
    case BMCRYPT_E_LICENCE_OTHER_FILE:
      return "use the licence issued for this model (`bmcrypt license show` prints its file id)";
    case BMCRYPT_E_LICENCE_EXPIRED:
      return "ask the model's vendor for a renewed licence";
    case BMCRYPT_E_LICENCE_OTHER_DEVICE:
      return "ask the model's vendor for a licence that lists this device's serial number";
    default:
      return "the file is not an intact bmcrypt-encrypted bmodel";
  }
}

static int fail(const char* what, int code) {
  fprintf(stderr, "bmcrypt-verify: error: %s: %s\n", what, bmcrypt_last_error());
  fprintf(stderr, "bmcrypt-verify: hint: %s\n", hint_for(code));
  return code;
}

int main(int argc, char** argv) {
  if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
    fprintf(argc < 2 ? stderr : stdout,
            "usage: BMCRYPT_KEY_FILE=KEYFILE bmcrypt-verify FILE...\n"
            "Authenticates every byte of each encrypted .bmodel FILE (libbmcrypt %s).\n",
            bmcrypt_version());
    return argc < 2 ? EXIT_USAGE : 0;
  }
  if (strcmp(argv[1], "--version") == 0) {
    printf("bmcrypt-verify %s\n", bmcrypt_version());
    return 0;
  }

  /* Registered up front so that an unusable key file is reported once, as such, and not as a
   * failure of the first model. Without the variable the library falls back to
   * BMCRYPT_PASSPHRASE, or reports that no key was given. */
  const char* key_file = getenv("BMCRYPT_KEY_FILE");
  if (key_file && *key_file && !bmcrypt_register_key_file(key_file))
    return fail(key_file, bmcrypt_last_error_code());

  int status = 0;
  for (int i = 1; i < argc; ++i) {
    if (bmcrypt_verify_file(argv[i])) {
      printf("%s: OK\n", argv[i]);
      continue;
    }
    const int code = bmcrypt_last_error_code();
    fail(argv[i], code);
    if (status == 0) status = code;
  }
  bmcrypt_clear_keys();
  return status;
}
