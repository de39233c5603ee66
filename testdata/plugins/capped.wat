;; capped: a stateful policy that must stay exact across nodes. It keeps the
;; units it allowed (u64, little-endian) in the plugin state and allows a call
;; while those plus its quantity fit in the tier's limit (always when the
;; limit is -1, unlimited); the state is replaced on every call, allowed or
;; denied. With the host's guarantees, the state equals the stored usage.
(module
  (memory (export "memory") 1)
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
    (local $count i64) (local $qty i64) (local $limit i64) (local $allow i32)
    (if (i32.eq (i32.load offset=100 (local.get $in)) (i32.const 8))
      (then (local.set $count
        (i64.load (i32.add (local.get $in) (i32.load offset=96 (local.get $in)))))))
    (local.set $qty (i64.load offset=32 (local.get $in)))
    (local.set $limit (i64.load offset=24 (local.get $in)))
    (local.set $allow
      (i32.or (i64.lt_s (local.get $limit) (i64.const 0))
              (i64.le_s (i64.add (local.get $count) (local.get $qty)) (local.get $limit))))
    (if (local.get $allow)
      (then (local.set $count (i64.add (local.get $count) (local.get $qty)))))
    (i32.store (local.get $out) (local.get $allow))
    (i32.store offset=4 (local.get $out) (i32.const 1))        ;; replace state
    (i64.store offset=8 (local.get $out) (local.get $qty))     ;; cost
    (i64.store offset=16 (local.get $out) (i64.const 0))
    (i32.store offset=24 (local.get $out) (i32.const 0))       ;; no message
    (i32.store offset=28 (local.get $out) (i32.const 8))
    (i64.store offset=32 (local.get $out) (local.get $count))
    (i32.const 40))
)
