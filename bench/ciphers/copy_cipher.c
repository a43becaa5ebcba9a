/* The copy-only "cipher" of the load baseline: model_tool's -lib contract with no cryptography.
 * encrypt = a 16-byte header + memcpy, decrypt = strip it. What is left of a load through
 * bmrt_load_bmodel_with_decrypt_lib is the runtime's own cost of the decrypt path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define HEAD 16

uint8_t* encrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  uint8_t* out = malloc(in_len + HEAD);
  if (!out) return NULL;
  memcpy(out, "bench-copy-only", HEAD);
  memcpy(out + HEAD, in, in_len);
  *out_len = in_len + HEAD;
  return out;
}

uint8_t* decrypt(const uint8_t* in, uint64_t in_len, uint64_t* out_len) {
  if (in_len < HEAD) return NULL;
  uint8_t* out = malloc(in_len - HEAD ? in_len - HEAD : 1);
  if (!out) return NULL;
  memcpy(out, in + HEAD, in_len - HEAD);
  *out_len = in_len - HEAD;
  return out;
}
