;; The demo page's module: an init function that does real work once (a sieve that lists the primes below
;; 30,000 into memory), and exports that change state afterwards (a running total of added numbers).
(module
  (memory (export "memory") 1)
  (global $inits (mut i32) (i32.const 0))  ;; how many times the init function ran
  (global $primes (mut i32) (i32.const 0)) ;; how many primes the list holds
  (global $total (mut i64) (i64.const 0))
  (global $adds (mut i32) (i32.const 0))
  (global $mean (mut f64) (f64.const 0))
  (data (i32.const 16) "counter demo")

  (func (export "wizer-initialize")
    (local $i i32) (local $j i32)
    (global.set $inits (i32.add (global.get $inits) (i32.const 1)))
    ;; Sieve of Eratosthenes in the scratch bytes 0x8000..0x8000+30000 (1 = composite).
    (local.set $i (i32.const 2))
    (block $done
      (loop $outer
        (br_if $done (i32.ge_u (local.get $i) (i32.const 30000)))
        (if (i32.eqz (i32.load8_u offset=0x8000 (local.get $i)))
          (then
            ;; A prime: append it to the list at 0x400, then strike its multiples.
            (i32.store offset=0x400 (i32.shl (global.get $primes) (i32.const 2)) (local.get $i))
            (global.set $primes (i32.add (global.get $primes) (i32.const 1)))
            (local.set $j (i32.mul (local.get $i) (local.get $i)))
            (block $struck
              (loop $inner
                (br_if $struck (i32.ge_u (local.get $j) (i32.const 30000)))
                (i32.store8 offset=0x8000 (local.get $j) (i32.const 1))
                (local.set $j (i32.add (local.get $j) (local.get $i)))
                (br $inner)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $outer)))
    ;; The scratch space goes back to zeros: a snapshot holds no segment for it.
    (memory.fill (i32.const 0x8000) (i32.const 0) (i32.const 30000)))

  (func (export "add") (param $n i64) (result i64)
    (global.set $total (i64.add (global.get $total) (local.get $n)))
    (global.set $adds (i32.add (global.get $adds) (i32.const 1)))
    (global.set $mean (f64.div (f64.convert_i64_s (global.get $total)) (f64.convert_i32_u (global.get $adds))))
    (global.get $total))

  (func (export "inits") (result i32) (global.get $inits))
  (func (export "primes") (result i32) (global.get $primes))
  (func (export "total") (result i64) (global.get $total))
  (func (export "adds") (result i32) (global.get $adds))
  (func (export "mean") (result f64) (global.get $mean))
  ;; The n-th prime of the list (0-based), or 0 past its end.
  (func (export "nth") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (global.get $primes))
      (then (i32.load offset=0x400 (i32.shl (local.get $n) (i32.const 2))))
      (else (i32.const 0)))))
