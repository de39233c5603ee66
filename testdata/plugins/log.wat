;; log: allows every call after writing to the plugin log twice: a line with
;; dream.log, and "stdout line\npartial" to stdout with WASI fd_write.
(module
  (import "dream" "log" (func $log (param i32 i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello from dream.log")
  (data (i32.const 64) "stdout line\npartial")
  (data (i32.const 128) "\40\00\00\00\13\00\00\00") ;; iovec {ptr 64, len 19}
  ;; alloc: a bump allocator that grows memory when needed.
  (global $heap (mut i32) (i32.const 4096))
  (func (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.add (local.get $p) (local.get $n)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow (i32.shr_u (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535)) (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (global.set $heap (local.get $end))
    (local.get $p))

  (func (export "decide_v1") (param $in i32) (param $len i32) (param $out i32) (param $cap i32) (result i32)
    (call $log (i32.const 16) (i32.const 20))
    (drop (call $fd_write (i32.const 1) (i32.const 128) (i32.const 1) (i32.const 136)))
    (i32.store (local.get $out) (i32.const 1))
    (i32.store offset=4 (local.get $out) (i32.const 0))
    (i64.store offset=8 (local.get $out) (i64.load offset=32 (local.get $in)))
    (i64.store offset=16 (local.get $out) (i64.const 0))
    (i64.store offset=24 (local.get $out) (i64.const 0))
    (i32.const 32))
)
