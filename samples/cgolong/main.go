// cgolong: long cgo calls on GOMAXPROCS=1, next to a CPU-bound goroutine.
//
// The program sets runtime.GOMAXPROCS(1) itself. Two goroutines run until
// the deadline:
//
//	main.callLoop -> main.callC --cgo--> cgolong_spin (C, clong.c)   go -> c, cgo-call
//	                                      (or cgolong_sleep with --sleep)
//	main.computeLoop -> main.compute                                   pure Go
//
// Each C call lasts --call-ms milliseconds (default 2): a busy spin, or a
// clock_nanosleep with --sleep. While it runs, the only P sits in the syscall
// state; sysmon retakes it (handoffp -> startm) so that the compute goroutine
// runs on another M, and the caller has to get a P back when C returns.
// These are Go's FFI-induced context switches. At exit the program sums
// voluntary_ctxt_switches and nonvoluntary_ctxt_switches over
// /proc/self/task/*/status (the ground truth for context switches) and
// reports them with the thread count, before and after the work.
package main

/*
#include <stdint.h>
#include "clong.h"
*/
import "C"

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Pure-Go work per compute iteration (a few microseconds).
const computeRounds = 1024

var stopping int32

type callStats struct {
	calls   int64
	cNs     int64 // time inside C, from the C side's own clock reads
	firstNs int64 // CLOCK_MONOTONIC start of the first call
	lastNs  int64 // CLOCK_MONOTONIC return of the last call
	loopNs  int64 // Go-side time of the whole call loop
	digest  int64
}

//go:noinline
func callC(ns int64, sleep bool, t *C.clong_times) int64 {
	if sleep {
		return int64(C.cgolong_sleep(C.int64_t(ns), t))
	}
	return int64(C.cgolong_spin(C.int64_t(ns), t))
}

//go:noinline
func callLoop(ns int64, sleep bool, deadline time.Time, st *callStats) {
	var t C.clong_times
	start := time.Now()
	for atomic.LoadInt32(&stopping) == 0 && time.Now().Before(deadline) {
		st.digest ^= callC(ns, sleep, &t)
		if st.calls == 0 {
			st.firstNs = int64(t.start_ns)
		}
		st.lastNs = int64(t.end_ns)
		st.cNs += int64(t.end_ns - t.start_ns)
		st.calls++
	}
	st.loopNs = int64(time.Since(start))
}

//go:noinline
func compute(x uint64) uint64 {
	for i := 0; i < computeRounds; i++ {
		x = x*6364136223846793005 + 1442695040888963407
		x ^= x >> 29
	}
	return x
}

//go:noinline
func computeLoop(deadline time.Time, iterations *int64, digest *uint64) {
	x := uint64(1)
	var n int64
	for atomic.LoadInt32(&stopping) == 0 {
		x = compute(x)
		n++
		if n%64 == 0 && !time.Now().Before(deadline) {
			break
		}
	}
	*iterations = n
	*digest = x
}

type taskSwitches struct {
	Tid          int    `json:"tid"`
	Comm         string `json:"comm"`
	Voluntary    int64  `json:"voluntary"`
	Nonvoluntary int64  `json:"nonvoluntary"`
}

type switchTotals struct {
	Threads      int            `json:"threads"`
	Voluntary    int64          `json:"voluntary"`
	Nonvoluntary int64          `json:"nonvoluntary"`
	Tasks        []taskSwitches `json:"tasks"`
}

// readSwitches sums the context-switch counters of every thread of this
// process (/proc/self/task/TID/status).
func readSwitches() switchTotals {
	var tot switchTotals
	dirs, _ := filepath.Glob("/proc/self/task/*")
	for _, d := range dirs {
		data, err := os.ReadFile(filepath.Join(d, "status"))
		if err != nil {
			continue // the thread exited
		}
		tid, _ := strconv.Atoi(filepath.Base(d))
		ts := taskSwitches{Tid: tid}
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "Name":
				ts.Comm = v
			case "voluntary_ctxt_switches":
				ts.Voluntary, _ = strconv.ParseInt(v, 10, 64)
			case "nonvoluntary_ctxt_switches":
				ts.Nonvoluntary, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		tot.Threads++
		tot.Voluntary += ts.Voluntary
		tot.Nonvoluntary += ts.Nonvoluntary
		tot.Tasks = append(tot.Tasks, ts)
	}
	sort.Slice(tot.Tasks, func(i, j int) bool { return tot.Tasks[i].Tid < tot.Tasks[j].Tid })
	return tot
}

type crossing struct {
	Caller    string           `json:"caller"`
	Callee    string           `json:"callee"`
	Mechanism string           `json:"mechanism"`
	Count     int64            `json:"count"`
	Functions map[string]int64 `json:"functions,omitempty"`
}

type truth struct {
	Sample            string       `json:"sample"`
	Seconds           float64      `json:"seconds"`
	Crossings         []crossing   `json:"crossings"`
	Calls             int64        `json:"calls"`
	CallMs            float64      `json:"call_ms"`
	Sleep             bool         `json:"sleep"`
	NsPerCall         float64      `json:"ns_per_call"`
	CNsPerCall        float64      `json:"c_ns_per_call"`
	StartNs           int64        `json:"start_ns"`
	EndNs             int64        `json:"end_ns"`
	ComputeIterations int64        `json:"compute_iterations"`
	ComputeItersPerS  float64      `json:"compute_iterations_per_s"`
	Gomaxprocs        int          `json:"gomaxprocs"`
	Threads           int          `json:"threads"`
	Voluntary         int64        `json:"voluntary_ctxt_switches"`
	Nonvoluntary      int64        `json:"nonvoluntary_ctxt_switches"`
	SwitchesBefore    switchTotals `json:"ctxt_switches_before"`
	SwitchesAfter     switchTotals `json:"ctxt_switches_after"`
	Interrupted       bool         `json:"interrupted"`
	Pid               int          `json:"pid"`
	GoVersion         string       `json:"go"`
	Variant           string       `json:"variant,omitempty"`
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
	callMs := flag.Float64("call-ms", 2, "milliseconds per C call")
	sleep := flag.Bool("sleep", false, "the C call sleeps (clock_nanosleep) instead of spinning")
	flag.Parse()
	runtime.GOMAXPROCS(1)

	// SIGINT/SIGTERM: stop the work (truth is still written); a second
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

	before := readSwitches()
	ns := int64(*callMs * 1e6)
	start := time.Now()
	deadline := start.Add(time.Duration(*seconds * float64(time.Second)))
	var st callStats
	var iterations int64
	var digest uint64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); callLoop(ns, *sleep, deadline, &st) }()
	go func() { defer wg.Done(); computeLoop(deadline, &iterations, &digest) }()
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	after := readSwitches()

	fn := "cgolong_spin"
	if *sleep {
		fn = "cgolong_sleep"
	}
	if *truthPath != "" {
		t := &truth{
			Sample:            "cgolong",
			Seconds:           elapsed,
			Crossings:         []crossing{{"go", "c", "cgo-call", st.calls, map[string]int64{fn: st.calls}}},
			Calls:             st.calls,
			CallMs:            *callMs,
			Sleep:             *sleep,
			StartNs:           st.firstNs,
			EndNs:             st.lastNs,
			ComputeIterations: iterations,
			ComputeItersPerS:  float64(iterations) / elapsed,
			Gomaxprocs:        runtime.GOMAXPROCS(0),
			Threads:           after.Threads,
			Voluntary:         after.Voluntary,
			Nonvoluntary:      after.Nonvoluntary,
			SwitchesBefore:    before,
			SwitchesAfter:     after,
			Interrupted:       atomic.LoadInt32(&stopping) != 0,
			Pid:               os.Getpid(),
			GoVersion:         runtime.Version(),
			Variant:           os.Getenv("SEAM_SAMPLE_VARIANT"),
		}
		if st.calls > 0 {
			t.NsPerCall = float64(st.loopNs) / float64(st.calls)
			t.CNsPerCall = float64(st.cNs) / float64(st.calls)
		}
		if err := writeTruth(*truthPath, t); err != nil {
			fmt.Fprintln(os.Stderr, "cgolong: writing truth:", err)
			os.Exit(1)
		}
	}
	if digest == 42 && st.digest == 42 { // keep the work observable
		fmt.Println("digest", digest)
	}
}
