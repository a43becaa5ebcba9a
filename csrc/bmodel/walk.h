// The verifying walk of a bmodel FlatBuffer (FORMAT.md §6.1), rule for rule the walk of
// bmcrypt/bmodel/_walk.py, so that the C library and the Python package give every FlatBuffer
// the same verdict. The flatc-generated verifier accepts more (a field outside its table, a
// vtable shorter than 4 bytes, a DAG of shared tables up to 10 million visits): it runs only
// after this walk, as a second line of defence before the generated accessors are used.
#pragma once
#include <cstdint>
#include <vector>

#include "bytes.h"

namespace bmcrypt {

// FORMAT.md §6.1: real FlatBuffers are KiB to a few MiB; a bigger one is damage or an attack.
constexpr uint64_t kMaxFlatBufferSize = uint64_t(1) << 30;
// The walk's budget beyond the buffer's size: shared tables and vectors are charged every time
// they are reached, so a small buffer cannot make a reader expand an exponential DAG.
constexpr uint64_t kMaxWalkExtraCost = 1'000'000;

// One Binary{start, size} struct of the FlatBuffer (relative to the binary region).
struct BinaryRef {
  uint64_t start = 0;
  uint64_t size = 0;
};

// Walks the whole FlatBuffer from its root Model table against schemas/bmodel.fbs. Throws
// Error(corrupt) "metadata is damaged: <path> ..." at the first rule broken. Returns every
// Binary reachable from the root (a shared table's once).
std::vector<BinaryRef> walk_flatbuffer(ByteView buffer);

}  // namespace bmcrypt
