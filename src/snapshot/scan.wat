;; The memory scanner of snapshotSegments (segments.ts), as WebAssembly: the same runs and merges as its
;; JavaScript, at machine speed from the first call. JavaScript would run this loop interpreted and cold in a
;; one-shot command, millions of times on a sparse memory. The bytes in scan-wasm.ts are this file compiled
;; (scripts/build-scanner.ts; test/segments.test.ts checks they match).
;;
;; It scans memory 0. As written, that is its own memory, with a window into which the caller copies the bytes
;; to scan, piece by piece. The build script also compiles it with the memory to scan imported in front
;; (`(import "wiz" "scanned" (memory 0))` before `(memory $own …)`, and 8 pages: no window): memory 0 is then
;; the guest's memory, read in place, with no copy (multi-memory); its own memory becomes memory 1.
;;
;; Its own memory: a histogram of gap sizes (u32 × 65536, the last bucket counting every gap of 65535 bytes or
;; more); the segments kept (pairs of i64: start, end); the window [524288, 524288 + 4 MiB).
(module
  (memory $own (export "memory") 72)
  (global $HIST i32 (i32.const 0))
  (global $OUT i32 (i32.const 262144))
  (global $OUT_CAP i32 (i32.const 16384))

  ;; The pass: 1 counts gaps and segments and keeps the first $cap; 2 counts and keeps the first $cap.
  (global $mode (mut i32) (i32.const 1))
  (global $threshold (mut i64) (i64.const 0))
  (global $quota (mut i64) (i64.const 0))
  (global $cap (mut i32) (i32.const 0))
  (global $count (mut i64) (i64.const 0))
  ;; A gap of 65535 bytes or more was counted (the histogram does not tell such gaps apart).
  (global $longGap (mut i32) (i32.const 0))
  ;; Where the scan of the current memory stands.
  (global $inRun (mut i32) (i32.const 0))
  (global $runStart (mut i64) (i64.const 0))
  (global $start (mut i64) (i64.const -1))
  (global $end (mut i64) (i64.const -1))
  (global $gapBefore (mut i64) (i64.const -1))

  ;; Before the first memory of pass 1: no gaps counted yet.
  (func (export "clear")
    (memory.fill $own (global.get $HIST) (i32.const 0) (i32.const 262144))
    (global.set $longGap (i32.const 0)))

  ;; A memory's scan begins: its segments are counted from 0 and the first $cap kept. Gaps never span memories.
  (func (export "begin") (param $mode i32) (param $threshold i64) (param $quota i64) (param $cap i32)
    (global.set $mode (local.get $mode))
    (global.set $threshold (local.get $threshold))
    (global.set $quota (local.get $quota))
    (global.set $cap (select (local.get $cap) (global.get $OUT_CAP) (i32.lt_u (local.get $cap) (global.get $OUT_CAP))))
    (global.set $count (i64.const 0))
    (global.set $inRun (i32.const 0))
    (global.set $start (i64.const -1))
    (global.set $end (i64.const -1))
    (global.set $gapBefore (i64.const -1)))

  ;; Ends the current segment [start, end), preceded by a gap of `gapBefore` bytes (-1: the memory's first).
  (func $emit (param $start i64) (param $end i64) (param $gapBefore i64)
    (local $at i32)
    (if (i32.and (i32.eq (global.get $mode) (i32.const 1)) (i64.ge_s (local.get $gapBefore) (i64.const 0)))
      (then
        (if (i64.ge_s (local.get $gapBefore) (i64.const 65535))
          (then (global.set $longGap (i32.const 1)) (local.set $at (i32.const 65535)))
          (else (local.set $at (i32.wrap_i64 (local.get $gapBefore)))))
        (local.set $at (i32.add (global.get $HIST) (i32.shl (local.get $at) (i32.const 2))))
        (i32.store $own (local.get $at) (i32.add (i32.load $own (local.get $at)) (i32.const 1)))))
    (if (i64.lt_u (global.get $count) (i64.extend_i32_u (global.get $cap)))
      (then
        (local.set $at (i32.add (global.get $OUT) (i32.shl (i32.wrap_i64 (global.get $count)) (i32.const 4))))
        (i64.store $own (local.get $at) (local.get $start))
        (i64.store $own offset=8 (local.get $at) (local.get $end))))
    (global.set $count (i64.add (global.get $count) (i64.const 1))))

  ;; A run of non-zero bytes [rs, re): merged into the current segment across a short gap, or a new segment.
  (func $run (param $rs i64) (param $re i64)
    (local $gap i64)
    (if (i64.ge_s (global.get $start) (i64.const 0))
      (then
        (local.set $gap (i64.sub (local.get $rs) (global.get $end)))
        (if (i32.or
              (i64.lt_s (local.get $gap) (global.get $threshold))
              (i32.and (i64.eq (local.get $gap) (global.get $threshold)) (i64.gt_s (global.get $quota) (i64.const 0))))
          (then
            (if (i64.eq (local.get $gap) (global.get $threshold))
              (then (global.set $quota (i64.sub (global.get $quota) (i64.const 1)))))
            (global.set $end (local.get $re))
            (return)))
        (call $emit (global.get $start) (global.get $end) (global.get $gapBefore))
        (global.set $gapBefore (local.get $gap))))
    (global.set $start (local.get $rs))
    (global.set $end (local.get $re)))

  ;; Scans addresses [from, from + len) of memory 0, which hold the memory's bytes from `from + shift` on: the
  ;; window (shift: the piece's offset - 524288), or the memory itself (shift 0). Eight bytes at a time: the
  ;; first non-zero byte of a word is its lowest set bit's byte (little-endian), the first zero byte the lowest
  ;; flag of (w - 0x01..01) & ~w & 0x80..80 (flags above a zero byte may be false, the lowest never is). The run
  ;; merging is inlined, with the state in locals: a sparse memory has a run every few bytes.
  (func (export "scan") (param $shift i64) (param $from i32) (param $len i32)
    (local $i i32)
    (local $stop i32)
    (local $w i64)
    (local $rs i64)
    (local $re i64)
    (local $gap i64)
    (local $start i64)
    (local $end i64)
    (local $gapBefore i64)
    (local $threshold i64)
    (local $quota i64)
    (local.set $start (global.get $start))
    (local.set $end (global.get $end))
    (local.set $gapBefore (global.get $gapBefore))
    (local.set $threshold (global.get $threshold))
    (local.set $quota (global.get $quota))
    (local.set $rs (global.get $runStart))
    (local.set $i (local.get $from))
    ;; At the end of a 4 GiB memory, $stop and $i wrap to 0: the bytes left are $stop - $i, which never wraps.
    (local.set $stop (i32.add (local.get $from) (local.get $len)))
    (block $done
      (loop $outer
        (if (i32.eqz (global.get $inRun))
          (then
            (block $found
              (loop $zeros
                (if (i32.ge_u (i32.sub (local.get $stop) (local.get $i)) (i32.const 8))
                  (then
                    (local.set $w (i64.load (local.get $i)))
                    (if (i64.eqz (local.get $w))
                      (then (local.set $i (i32.add (local.get $i) (i32.const 8))) (br $zeros)))
                    (local.set $i (i32.add (local.get $i) (i32.wrap_i64 (i64.shr_u (i64.ctz (local.get $w)) (i64.const 3)))))
                    (br $found)))
                (br_if $done (i32.eq (local.get $i) (local.get $stop)))
                (br_if $found (i32.load8_u (local.get $i)))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $zeros)))
            (local.set $rs (i64.add (local.get $shift) (i64.extend_i32_u (local.get $i))))
            (global.set $inRun (i32.const 1))))
        (block $zero
          (loop $nonzeros
            (if (i32.ge_u (i32.sub (local.get $stop) (local.get $i)) (i32.const 8))
              (then
                (local.set $w (i64.load (local.get $i)))
                (local.set $w (i64.and
                  (i64.and (i64.sub (local.get $w) (i64.const 0x0101010101010101)) (i64.xor (local.get $w) (i64.const -1)))
                  (i64.const 0x8080808080808080)))
                (if (i64.eqz (local.get $w))
                  (then (local.set $i (i32.add (local.get $i) (i32.const 8))) (br $nonzeros)))
                (local.set $i (i32.add (local.get $i) (i32.wrap_i64 (i64.shr_u (i64.ctz (local.get $w)) (i64.const 3)))))
                (br $zero)))
            ;; The run goes on into the next piece.
            (br_if $done (i32.eq (local.get $i) (local.get $stop)))
            (br_if $zero (i32.eqz (i32.load8_u (local.get $i))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $nonzeros)))
        (global.set $inRun (i32.const 0))
        (local.set $re (i64.add (local.get $shift) (i64.extend_i32_u (local.get $i))))
        ;; The run [rs, re): merged across a short gap, or the segment before it ends and it starts a new one.
        (block $merged
          (if (i64.ge_s (local.get $start) (i64.const 0))
            (then
              (local.set $gap (i64.sub (local.get $rs) (local.get $end)))
              (if (i64.lt_s (local.get $gap) (local.get $threshold))
                (then (local.set $end (local.get $re)) (br $merged)))
              (if (i32.and (i64.eq (local.get $gap) (local.get $threshold)) (i64.gt_s (local.get $quota) (i64.const 0)))
                (then
                  (local.set $quota (i64.sub (local.get $quota) (i64.const 1)))
                  (local.set $end (local.get $re))
                  (br $merged)))
              (call $emit (local.get $start) (local.get $end) (local.get $gapBefore))
              (local.set $gapBefore (local.get $gap))))
          (local.set $start (local.get $rs))
          (local.set $end (local.get $re)))
        (br $outer)))
    (global.set $start (local.get $start))
    (global.set $end (local.get $end))
    (global.set $gapBefore (local.get $gapBefore))
    (global.set $quota (local.get $quota))
    (global.set $runStart (local.get $rs)))

  ;; The memory ends at `size`: a run still open ends there, and the last segment is emitted.
  (func (export "finish") (param $size i64)
    (if (global.get $inRun)
      (then
        (global.set $inRun (i32.const 0))
        (call $run (global.get $runStart) (local.get $size))))
    (if (i64.ge_s (global.get $start) (i64.const 0))
      (then (call $emit (global.get $start) (global.get $end) (global.get $gapBefore)))))

;; Writes the first $n segments kept of the memory just scanned as entries of a data section, at $dst in its
  ;; own memory: each a header (flags 0, or 2 and the memory index; i32.const offset; end; length) and its bytes,
  ;; copied from memory 0 at $base + offset (the window's start, or 0 in place). Returns where the entries end.
  ;; A sparse memory has thousands of segments: JavaScript would encode them cold, one call per byte.
  (func (export "encode") (param $n i32) (param $memory i32) (param $base i32) (param $dst i32) (result i32)
    (local $k i32)
    (local $at i32)
    (local $pair i32)
    (local $start i32)
    (local $len i32)
    (local.set $at (local.get $dst))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $k) (local.get $n)))
        (local.set $pair (i32.add (global.get $OUT) (i32.shl (local.get $k) (i32.const 4))))
        (local.set $start (i32.wrap_i64 (i64.load $own (local.get $pair))))
        (local.set $len (i32.sub (i32.wrap_i64 (i64.load $own offset=8 (local.get $pair))) (local.get $start)))
        (if (local.get $memory)
          (then
            (i32.store8 $own (local.get $at) (i32.const 0x02))
            (local.set $at (call $u32 (i32.add (local.get $at) (i32.const 1)) (local.get $memory))))
          (else
            (i32.store8 $own (local.get $at) (i32.const 0x00))
            (local.set $at (i32.add (local.get $at) (i32.const 1)))))
        (i32.store8 $own (local.get $at) (i32.const 0x41))
        (local.set $at (call $s32 (i32.add (local.get $at) (i32.const 1)) (local.get $start)))
        (i32.store8 $own (local.get $at) (i32.const 0x0b))
        (local.set $at (call $u32 (i32.add (local.get $at) (i32.const 1)) (local.get $len)))
        (memory.copy $own 0 (local.get $at) (i32.add (local.get $base) (local.get $start)) (local.get $len))
        (local.set $at (i32.add (local.get $at) (local.get $len)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $next)))
    (local.get $at))

  ;; Unsigned LEB128 of $v (read unsigned) at $at; returns the address after it.
  (func $u32 (param $at i32) (param $v i32) (result i32)
    (loop $more
      (if (i32.ge_u (local.get $v) (i32.const 0x80))
        (then
          (i32.store8 $own (local.get $at) (i32.or (i32.and (local.get $v) (i32.const 0x7f)) (i32.const 0x80)))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (local.set $v (i32.shr_u (local.get $v) (i32.const 7)))
          (br $more))))
    (i32.store8 $own (local.get $at) (local.get $v))
    (i32.add (local.get $at) (i32.const 1)))

  ;; Signed LEB128 of $v at $at; returns the address after it.
  (func $s32 (param $at i32) (param $v i32) (result i32)
    (local $byte i32)
    (loop $more
      (local.set $byte (i32.and (local.get $v) (i32.const 0x7f)))
      (local.set $v (i32.shr_s (local.get $v) (i32.const 7)))
      (if (i32.eqz (i32.or
            (i32.and (i32.eqz (local.get $v)) (i32.eqz (i32.and (local.get $byte) (i32.const 0x40))))
            (i32.and (i32.eq (local.get $v) (i32.const -1)) (i32.ne (i32.and (local.get $byte) (i32.const 0x40)) (i32.const 0)))))
        (then
          (i32.store8 $own (local.get $at) (i32.or (local.get $byte) (i32.const 0x80)))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $more))))
    (i32.store8 $own (local.get $at) (local.get $byte))
    (i32.add (local.get $at) (i32.const 1)))

  (func (export "count") (result i64) (global.get $count))
  (func (export "quota") (result i64) (global.get $quota))
  (func (export "longGap") (result i32) (global.get $longGap)))
