// weighted (AssemblyScript): the built-in tier limits, but every unit of the
// "exports" feature costs 10 units of usage. An example of the limitpolicy v1
// ABI (PLUGIN_ABI.md) without a PDK: plain loads and stores.
//
// Build: npm install && npm run build   (asc --runtime stub --use abort=)

const WEIGHT_EXPORTS: i64 = 10;

// "Please upgrade to unlock more " as UTF-8 bytes.
const PREFIX = memory.data<u8>([
  0x50, 0x6c, 0x65, 0x61, 0x73, 0x65, 0x20, 0x75, 0x70, 0x67, 0x72, 0x61, 0x64, 0x65, 0x20,
  0x74, 0x6f, 0x20, 0x75, 0x6e, 0x6c, 0x6f, 0x63, 0x6b, 0x20, 0x6d, 0x6f, 0x72, 0x65, 0x20,
]);
const PREFIX_LEN: u32 = 30;
const MAX_MESSAGE: u32 = 512;

// "exports" as UTF-8 bytes.
const EXPORTS = memory.data<u8>([0x65, 0x78, 0x70, 0x6f, 0x72, 0x74, 0x73]);
const EXPORTS_LEN: u32 = 7;

// alloc is called once per instance; the stub runtime never frees.
export function alloc(size: i32): i32 {
  return heap.alloc(<usize>size) as i32;
}

function equals(p: usize, n: u32, lit: usize, litLen: u32): bool {
  if (n != litLen) return false;
  return memory.compare(p, lit, <usize>n) == 0;
}

export function decide_v1(inPtr: i32, inLen: i32, outPtr: i32, outCap: i32): i32 {
  const i = <usize>inPtr;
  const o = <usize>outPtr;
  const usage = load<i64>(i, 16);
  const limit = load<i64>(i, 24);
  let cost = load<i64>(i, 32);
  const feature = i + <usize>load<u32>(i, 80);
  let featureLen = load<u32>(i, 84);
  if (equals(feature, featureLen, EXPORTS, EXPORTS_LEN)) cost *= WEIGHT_EXPORTS;

  store<u32>(o, 0, 4); // flags
  store<i64>(o, cost, 8);
  store<i64>(o, 0, 16); // limit: not set
  store<u32>(o, 0, 28); // no state
  if (limit < 0 || usage + cost <= limit) {
    store<u32>(o, 1, 0);
    store<u32>(o, 0, 24);
    return 32;
  }
  store<u32>(o, 0, 0);
  if (featureLen > MAX_MESSAGE - PREFIX_LEN) featureLen = MAX_MESSAGE - PREFIX_LEN;
  memory.copy(o + 32, PREFIX, <usize>PREFIX_LEN);
  memory.copy(o + 32 + <usize>PREFIX_LEN, feature, <usize>featureLen);
  const msgLen = PREFIX_LEN + featureLen;
  store<u32>(o, msgLen, 24);
  return <i32>(32 + msgLen);
}
