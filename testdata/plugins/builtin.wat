;; builtin: the same decisions as the built-in tier limits (engine.BuiltinLimits):
;; allow while usage + quantity <= limit, always when the limit is -1; on deny the
;; message is "Please upgrade to unlock more <feature>".
(module
  (memory (export "memory") 1)
  (data (i32.const 16) "Please upgrade to unlock more ")
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
    (local $limit i64) (local $qty i64) (local $n i32)
    (local.set $limit (i64.load offset=24 (local.get $in)))
    (local.set $qty (i64.load offset=32 (local.get $in)))
    (i32.store offset=4 (local.get $out) (i32.const 0))
    (i64.store offset=8 (local.get $out) (local.get $qty))
    (i64.store offset=16 (local.get $out) (i64.const 0))
    (i32.store offset=28 (local.get $out) (i32.const 0))
    (if (i32.or
          (i64.lt_s (local.get $limit) (i64.const 0))
          (i64.le_s (i64.add (i64.load offset=16 (local.get $in)) (local.get $qty)) (local.get $limit)))
      (then
        (i32.store (local.get $out) (i32.const 1))
        (i32.store offset=24 (local.get $out) (i32.const 0))
        (return (i32.const 32))))
    ;; deny: message = prefix (30 bytes) + feature (at most 482 bytes)
    (i32.store (local.get $out) (i32.const 0))
    (local.set $n (i32.load offset=84 (local.get $in)))
    (if (i32.gt_u (local.get $n) (i32.const 482)) (then (local.set $n (i32.const 482))))
    (memory.copy (i32.add (local.get $out) (i32.const 32)) (i32.const 16) (i32.const 30))
    (memory.copy (i32.add (local.get $out) (i32.const 62))
                 (i32.add (local.get $in) (i32.load offset=80 (local.get $in)))
                 (local.get $n))
    (local.set $n (i32.add (local.get $n) (i32.const 30)))
    (i32.store offset=24 (local.get $out) (local.get $n))
    (i32.add (local.get $n) (i32.const 32)))
)
