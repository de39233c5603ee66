;; garbage (hostile at run time): answers like allow_all when the quantity is 1
;; (so it passes Load), and breaks the ABI in a different way for each other
;; quantity:
;;   2 decision 7             3 negative cost           4 returns 40, wrote 32
;;   5 returns 16             6 unknown output flag     7 message not UTF-8
;;   8 traps (unreachable)    9 returns -7             10 returns out_cap + 1
;;  11 600-byte message      12 1100-byte state        13 limit set to -5
;;  14 out-of-bounds load    15 calls proc_exit(3)
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
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

  (func $allow (param $in i32) (param $out i32) (result i32)
    (i32.store (local.get $out) (i32.const 1))
    (i32.store offset=4 (local.get $out) (i32.const 0))
    (i64.store offset=8 (local.get $out) (i64.load offset=32 (local.get $in)))
    (i64.store offset=16 (local.get $out) (i64.const 0))
    (i64.store offset=24 (local.get $out) (i64.const 0))
    (i32.const 32))

  (func (export "decide_v1") (param $in i32) (param $len i32) (param $out i32) (param $cap i32) (result i32)
    (local $q i32)
    (local.set $q (i32.wrap_i64 (i64.load offset=32 (local.get $in))))
    (drop (call $allow (local.get $in) (local.get $out)))
    (if (i32.eq (local.get $q) (i32.const 2))
      (then (i32.store (local.get $out) (i32.const 7)) (return (i32.const 32))))
    (if (i32.eq (local.get $q) (i32.const 3))
      (then (i64.store offset=8 (local.get $out) (i64.const -5)) (return (i32.const 32))))
    (if (i32.eq (local.get $q) (i32.const 4))
      (then (return (i32.const 40))))
    (if (i32.eq (local.get $q) (i32.const 5))
      (then (return (i32.const 16))))
    (if (i32.eq (local.get $q) (i32.const 6))
      (then (i32.store offset=4 (local.get $out) (i32.const 0x80)) (return (i32.const 32))))
    (if (i32.eq (local.get $q) (i32.const 7))
      (then
        (i32.store offset=24 (local.get $out) (i32.const 2))
        (i32.store16 offset=32 (local.get $out) (i32.const 0xfeff))
        (return (i32.const 34))))
    (if (i32.eq (local.get $q) (i32.const 8))
      (then unreachable))
    (if (i32.eq (local.get $q) (i32.const 9))
      (then (return (i32.const -7))))
    (if (i32.eq (local.get $q) (i32.const 10))
      (then (return (i32.add (local.get $cap) (i32.const 1)))))
    (if (i32.eq (local.get $q) (i32.const 11))
      (then
        (i32.store offset=24 (local.get $out) (i32.const 600))
        (memory.fill (i32.add (local.get $out) (i32.const 32)) (i32.const 0x21) (i32.const 600))
        (return (i32.const 632))))
    (if (i32.eq (local.get $q) (i32.const 12))
      (then
        (i32.store offset=4 (local.get $out) (i32.const 1))
        (i32.store offset=28 (local.get $out) (i32.const 1100))
        (return (i32.const 1132))))
    (if (i32.eq (local.get $q) (i32.const 13))
      (then
        (i32.store offset=4 (local.get $out) (i32.const 2))
        (i64.store offset=16 (local.get $out) (i64.const -5))
        (return (i32.const 32))))
    (if (i32.eq (local.get $q) (i32.const 14))
      (then (drop (i32.load (i32.const -4)))))
    (if (i32.eq (local.get $q) (i32.const 15))
      (then (call $proc_exit (i32.const 3))))
    (i32.const 32))
)
