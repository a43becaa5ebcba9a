/* sdk_check: a C program built against an unpacked SDK alone (its bmcrypt.h, its libbmcrypt.so),
 * the way a device runtime would be. tests/test_sdk.py prepares DIR on the x86 host with the
 * `bmcrypt` CLI and runs this under qemu-aarch64:
 *
 *   DIR/model.key DIR/wrong.key DIR/open.key (mode 0644)
 *   DIR/good.bmodel       encrypted with model.key
 *   DIR/tampered.bmodel   good.bmodel with one bit flipped in a weight envelope
 *   DIR/truncated.bmodel  good.bmodel cut short
 *   DIR/plain.bmodel DIR/foreign.bmodel (the vendor sample cipher) DIR/junk.bmodel
 *
 *   sdk_check DIR
 *
 * Each case prints "case: code N (name)" so the test can read what the library said; the last
 * line is "sdk_check: N checks, F failed", and the exit status is non-zero if F > 0.
 */
#define _POSIX_C_SOURCE 200809L /* unsetenv */
#include <bmcrypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int checks, failures;
static char dir[4096];

static const char* in_dir(const char* name) {
  static char path[4200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return path;
}

/* `ok` is the call's result; a failure must come with exactly the expected code and a message. */
static void expect(const char* what, bool ok, int want) {
  const int got = ok ? BMCRYPT_OK : bmcrypt_last_error_code();
  const char* message = bmcrypt_last_error();
  printf("%s: code %d (%s)\n", what, got, ok ? "ok" : message);
  ++checks;
  if (got != want || (!ok && !*message) || (ok && want != BMCRYPT_OK)) {
    ++failures;
    fprintf(stderr, "sdk_check: %s: expected code %d, got %d\n", what, want, got);
  }
}

static void verify_with(const char* key, const char* file, const char* what, int want) {
  bmcrypt_clear_keys();
  expect(what, bmcrypt_register_key_file(in_dir(key)) && bmcrypt_verify_file(in_dir(file)), want);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: sdk_check DIR\n");
    return 2;
  }
  snprintf(dir, sizeof dir, "%s", argv[1]);
  unsetenv("BMCRYPT_KEY_FILE");
  unsetenv("BMCRYPT_PASSPHRASE");
  printf("libbmcrypt %s\n", bmcrypt_version());

  verify_with("model.key", "good.bmodel", "right key", BMCRYPT_OK);
  verify_with("wrong.key", "good.bmodel", "wrong key", BMCRYPT_E_WRONG_KEY);
  verify_with("model.key", "tampered.bmodel", "tampered", BMCRYPT_E_TAMPERED);
  verify_with("model.key", "truncated.bmodel", "truncated", BMCRYPT_E_TRUNCATED);
  verify_with("model.key", "plain.bmodel", "plain", BMCRYPT_E_NOT_ENCRYPTED);
  verify_with("model.key", "foreign.bmodel", "foreign", BMCRYPT_E_FOREIGN_ENCRYPTED);
  verify_with("model.key", "junk.bmodel", "not a bmodel", BMCRYPT_E_NOT_A_BMODEL);
  verify_with("model.key", "missing.bmodel", "missing file", BMCRYPT_E_IO);
  verify_with("open.key", "good.bmodel", "key file open to others", BMCRYPT_E_KEY_FILE);

  bmcrypt_clear_keys();
  expect("no key", bmcrypt_verify_file(in_dir("good.bmodel")), BMCRYPT_E_NO_KEY);
  expect("null path", bmcrypt_verify_file(NULL), BMCRYPT_E_BAD_ARGUMENT);
  expect("null identity", bmcrypt_register_identity_file(NULL), BMCRYPT_E_BAD_ARGUMENT);

  /* The whole file verifies, then the vendor runtime is looked for: there is none here. */
  bmcrypt_register_key_file(in_dir("model.key"));
  expect("load without a runtime", bmcrypt_load_bmodel((void*)16, in_dir("good.bmodel")),
         BMCRYPT_E_RUNTIME);
  bmcrypt_clear_keys();

  printf("sdk_check: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
