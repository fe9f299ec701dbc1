// gomain: a Go program that calls C through cgo; the C code calls the Rust
// cdylib and calls back into Go.
//
// Each worker goroutine (--threads N, default 2) loops until the deadline:
//
//	main.goWork                                  pure Go work
//	main.callC --cgo--> c_work (C, cwork.c)      go -> c, cgo-call
//	    c_mix_step -> seam_mix_work (Rust)       c -> rust, c-abi (x cRustCalls)
//	    goCallback (//export)                    c -> go, cgo-export (once)
//	        main.callbackWork                    pure Go work
//
// --grow DEPTH: each iteration instead starts a new goroutine (its stack
// starts small) that recurses DEPTH frames of 300+ bytes each, so that its
// stack must grow (be copied) several times, and makes the cgo call (with its
// callback) from the deepest frame. Each frame checks, after the call below
// it returns, that its locals survived; the truth reports frames that did
// not (`corrupt_frames`, 0 when nothing damaged the goroutines' stacks) and
// how many goroutines grew (`grown_goroutines`).
package main

/*
#cgo CFLAGS: -I${SRCDIR}/../rust/include
#cgo LDFLAGS: -lseam_mix
#include <stdint.h>
#include "cwork.h"
*/
import "C"

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// Rust calls per c_work call, and rounds per Rust call (~25 us each).
	cRustCalls = 4
	rustRounds = 600
	// Pure-Go work per loop iteration (~60 us) and per callback (~15 us).
	goWorkPasses       = 190
	callbackWorkPasses = 45
)

var (
	cWorkCalls    int64 // go -> c    (cgo-call of c_work)
	rustCallsDone int64 // c  -> rust (c-abi calls of seam_mix_work)
	callbacks     int64 // c  -> go   (cgo-export calls of goCallback)
	stopping      int32
	growDepth     int
	grownGs       int64 // goroutines that recursed growDepth frames
	corruptFrames int64 // frames whose locals changed under them
)

// deep recurses n frames, each with locals it checks after the call below
// returns, and makes the cgo call at the bottom.
//
//go:noinline
func deep(n int, seed uint64) uint64 {
	var pad [40]uint64
	for i := range pad {
		pad[i] = seed ^ uint64(i*n+1)
	}
	var r uint64
	if n == 0 {
		r = callC(seed)
	} else {
		r = deep(n-1, seed*6364136223846793005+1)
	}
	for i := range pad {
		if pad[i] != seed^uint64(i*n+1) {
			atomic.AddInt64(&corruptFrames, 1)
			break
		}
	}
	return r + pad[n%len(pad)]
}

// grownCall runs deep on a goroutine of its own, whose stack starts small.
func grownCall(seed uint64) uint64 {
	done := make(chan uint64)
	go func() { done <- deep(growDepth, seed) }()
	r := <-done
	atomic.AddInt64(&grownGs, 1)
	return r
}

//export goCallback
func goCallback(x C.int64_t) C.int64_t {
	atomic.AddInt64(&callbacks, 1)
	return C.int64_t(callbackWork(uint64(x)))
}

//go:noinline
func callbackWork(x uint64) uint64 {
	var table [128]uint64
	return stir(&table, x, callbackWorkPasses)
}

//go:noinline
func goWork(x uint64) uint64 {
	var table [128]uint64
	return stir(&table, x, goWorkPasses)
}

//go:noinline
func stir(table *[128]uint64, x uint64, passes int) uint64 {
	var sum uint64
	for p := 0; p < passes; p++ {
		for i := range table {
			x = x*6364136223846793005 + 1442695040888963407 + table[i]
			table[i] = x ^ (x >> 29)
			sum += x >> 11
		}
	}
	return sum
}

//go:noinline
func callC(seed uint64) uint64 {
	var rust C.int64_t
	r := C.c_work(C.int64_t(seed&0x7fffffffffff), cRustCalls, rustRounds, &rust)
	atomic.AddInt64(&cWorkCalls, 1)
	atomic.AddInt64(&rustCallsDone, int64(rust))
	return uint64(r)
}

//go:noinline
func worker(id int, deadline time.Time, wg *sync.WaitGroup, digest *uint64) {
	defer wg.Done()
	seed := uint64(id)*7919 + 1
	for atomic.LoadInt32(&stopping) == 0 && time.Now().Before(deadline) {
		seed += goWork(seed)
		if growDepth > 0 {
			seed ^= grownCall(seed)
		} else {
			seed ^= callC(seed)
		}
	}
	atomic.AddUint64(digest, seed)
}

type crossing struct {
	Caller    string           `json:"caller"`
	Callee    string           `json:"callee"`
	Mechanism string           `json:"mechanism"`
	Count     int64            `json:"count"`
	Functions map[string]int64 `json:"functions,omitempty"`
}

type truth struct {
	Sample      string     `json:"sample"`
	Seconds     float64    `json:"seconds"`
	Crossings   []crossing `json:"crossings"`
	Threads     int        `json:"threads"`
	Interrupted bool       `json:"interrupted"`
	Pid         int        `json:"pid"`
	GoVersion   string     `json:"go"`
	Variant     string     `json:"variant,omitempty"`
	GrowDepth   int        `json:"grow_depth,omitempty"`
	GrownGs     int64      `json:"grown_goroutines"`
	Corrupt     int64      `json:"corrupt_frames"`
}

func writeTruth(path string, t *truth) error {
	data, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func main() {
	seconds := flag.Float64("seconds", 5, "how long to work")
	startDelay := flag.Float64("start-delay", 0, "seconds to wait after the ready line before working")
	truthPath := flag.String("truth", "", "write the ground truth JSON here at exit")
	threads := flag.Int("threads", 2, "worker goroutines")
	flag.IntVar(&growDepth, "grow", 0, "make each cgo call from a new goroutine, this many frames deep")
	flag.Parse()
	if *threads < 1 {
		*threads = 1
	}

	// SIGINT/SIGTERM: stop the workers (truth is still written); a second
	// signal exits at once.
	sigs := make(chan os.Signal, 2)
	stopCh := make(chan struct{})
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sigs
		atomic.StoreInt32(&stopping, 1)
		close(stopCh)
		s = <-sigs
		os.Exit(128 + int(s.(syscall.Signal)))
	}()

	fmt.Printf("seam-sample ready pid=%d\n", os.Getpid()) // os.Stdout is unbuffered

	if *startDelay > 0 {
		select {
		case <-time.After(time.Duration(*startDelay * float64(time.Second))):
		case <-stopCh:
		}
	}

	start := time.Now()
	deadline := start.Add(time.Duration(*seconds * float64(time.Second)))
	var wg sync.WaitGroup
	var digest uint64
	for i := 0; i < *threads; i++ {
		wg.Add(1)
		go worker(i, deadline, &wg, &digest)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()

	if *truthPath != "" {
		t := &truth{
			Sample:  "gomain",
			Seconds: elapsed,
			Crossings: []crossing{
				{"go", "c", "cgo-call", cWorkCalls, map[string]int64{"c_work": cWorkCalls}},
				{"c", "rust", "c-abi", rustCallsDone, map[string]int64{"seam_mix_work": rustCallsDone}},
				{"c", "go", "cgo-export", callbacks, map[string]int64{"goCallback": callbacks}},
			},
			Threads:     *threads,
			Interrupted: atomic.LoadInt32(&stopping) != 0,
			Pid:         os.Getpid(),
			GoVersion:   runtime.Version(),
			Variant:     os.Getenv("SEAM_SAMPLE_VARIANT"),
			GrowDepth:   growDepth,
			GrownGs:     atomic.LoadInt64(&grownGs),
			Corrupt:     atomic.LoadInt64(&corruptFrames),
		}
		if err := writeTruth(*truthPath, t); err != nil {
			fmt.Fprintln(os.Stderr, "gomain: writing truth:", err)
			os.Exit(1)
		}
	}
	if digest == 42 { // keep the work observable
		fmt.Println("digest", digest)
	}
	if n := atomic.LoadInt64(&corruptFrames); n > 0 {
		fmt.Fprintf(os.Stderr, "gomain: %d frames found their locals changed\n", n)
		os.Exit(3)
	}
}
