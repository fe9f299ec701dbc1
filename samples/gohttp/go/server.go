// Package main is the Go half of the gohttp sample, built with
// -buildmode=c-shared into libseamhttp.so and loaded by gohttp.py through
// cffi in ABI mode (ffi.dlopen).
//
// Python registers handlers (GoHttpRegister), starts the server on
// 127.0.0.1:0 (GoHttpStart returns the port), starts the load generator
// (GoHttpLoadStart: goroutines inside this library acting as HTTP clients)
// and, at the deadline, stops everything (GoHttpStop).
//
// Per request:
//
//	net/http handler goroutine -> main.serveRoute -> main.callHandler
//	  --cgo-call--> seam_http_call (C trampoline)
//	    --function pointer--> Python handler (cffi callback)
//	      --cffi-abi--> WriteResponse (Go export) -> http.ResponseWriter
package main

/*
#include "gohttp.h"
*/
import "C"

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

type pendingResponse struct {
	w     http.ResponseWriter
	wrote bool
	err   error
}

type counters struct {
	trampolineCalls int64 // go -> c (cgo-call of seam_http_call)
	writeResponses  int64 // python -> go (cffi-abi calls of WriteResponse)
	requestsOK      int64 // load generator: correct answers
	requestErrors   int64 // load generator: wrong status, wrong body or transport error
	served          int64 // requests the server handled
}

var (
	stats counters

	mu       sync.Mutex
	mux      = http.NewServeMux()
	server   *http.Server
	listener net.Listener
	serveErr = make(chan error, 1)

	pending sync.Map // request id -> *pendingResponse
	nextID  int64

	loadStop   chan struct{}
	loadWG     sync.WaitGroup
	loadClient *http.Client
	loadStart  time.Time
	loadEnd    atomic.Int64 // ns from loadStart until the last client stopped
)

// GoHttpRegister registers fn as the handler of route (e.g. "/score").
// Returns 0, or -1 when called after GoHttpStart.
//
//export GoHttpRegister
func GoHttpRegister(route *C.char, fn C.seam_http_handler) C.int {
	mu.Lock()
	defer mu.Unlock()
	if server != nil {
		return -1
	}
	r := C.GoString(route)
	mux.HandleFunc(r, func(w http.ResponseWriter, req *http.Request) {
		serveRoute(fn, w, req)
	})
	return 0
}

//go:noinline
func serveRoute(fn C.seam_http_handler, w http.ResponseWriter, req *http.Request) {
	atomic.AddInt64(&stats.served, 1)
	body, err := io.ReadAll(req.Body)
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	id := atomic.AddInt64(&nextID, 1)
	p := &pendingResponse{w: w}
	pending.Store(id, p)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rc := callHandler(fn, id, []byte(req.URL.Path), body)
	pending.Delete(id)
	if rc != 0 || !p.wrote {
		// Nothing was written yet in these cases (WriteResponse sets wrote).
		if !p.wrote {
			http.Error(w, fmt.Sprintf("handler failed (rc=%d)", rc), http.StatusInternalServerError)
		}
	}
}

// WriteResponse writes n bytes at buf as (part of) the body of request id.
// Python handlers call it (cffi ABI mode) while Go waits in callHandler, so
// it runs on the goroutine that serves the request. Returns 0, or -1 for an
// unknown request id.
//
//export WriteResponse
func WriteResponse(id C.int64_t, buf *C.char, n C.size_t) C.int {
	atomic.AddInt64(&stats.writeResponses, 1)
	v, ok := pending.Load(int64(id))
	if !ok {
		return -1
	}
	p := v.(*pendingResponse)
	data := C.GoBytes(unsafe.Pointer(buf), C.int(n))
	if _, err := p.w.Write(data); err != nil {
		p.err = err
	}
	p.wrote = true
	return 0
}

// GoHttpStart starts the server on 127.0.0.1 with a free port and returns
// the port, or -1 on error.
//
//export GoHttpStart
func GoHttpStart() C.int {
	mu.Lock()
	defer mu.Unlock()
	if server != nil {
		return -1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return -1
	}
	listener = ln
	server = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { serveErr <- server.Serve(ln) }()
	return C.int(ln.Addr().(*net.TCPAddr).Port)
}

// GoHttpLoadStart starts `clients` load-generator goroutines that send
// requests to the server and check every answer, until `seconds` have passed
// (the deadline is kept here, in Go, so that it holds even when the Python
// main thread waits long for the GIL) or until GoHttpStop.
//
//export GoHttpLoadStart
func GoHttpLoadStart(clients C.int, seconds C.double) C.int {
	mu.Lock()
	defer mu.Unlock()
	if server == nil || loadStop != nil {
		return -1
	}
	n := int(clients)
	if n < 1 {
		n = 1
	}
	loadClient = &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        2 * n,
			MaxIdleConnsPerHost: 2 * n,
			DisableCompression:  true,
		},
	}
	base := "http://" + listener.Addr().String()
	loadStop = make(chan struct{})
	loadStart = time.Now()
	deadline := loadStart.Add(time.Duration(float64(seconds) * float64(time.Second)))
	loadWG.Add(n)
	for i := 0; i < n; i++ {
		go loadClientLoop(i, base, deadline)
	}
	go func() {
		loadWG.Wait()
		loadEnd.Store(time.Since(loadStart).Nanoseconds())
	}()
	return 0
}

func loadClientLoop(client int, base string, deadline time.Time) {
	defer loadWG.Done()
	for i := 0; time.Now().Before(deadline); i++ {
		select {
		case <-loadStop:
			return
		default:
		}
		if oneRequest(client, i, base) {
			atomic.AddInt64(&stats.requestsOK, 1)
		} else {
			atomic.AddInt64(&stats.requestErrors, 1)
		}
	}
}

// oneRequest sends request number i of a client and checks the answer.
// Even requests: POST /score with numbers; odd: GET /hello/<name>.
//
//go:noinline
func oneRequest(client, i int, base string) bool {
	var resp *http.Response
	var err error
	var want string
	if i%2 == 0 {
		nums := scoreInput(client, i)
		var b bytes.Buffer
		for j, x := range nums {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(x))
		}
		want = "score=" + strconv.Itoa(expectedScore(nums)) + "\n"
		resp, err = loadClient.Post(base+"/score", "text/plain", &b)
	} else {
		name := fmt.Sprintf("client%d-req%d", client, i)
		want = expectedHello(name)
		resp, err = loadClient.Get(base + "/hello/" + name)
	}
	if err != nil {
		return false
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return err == nil && resp.StatusCode == http.StatusOK && string(body) == want
}

// scoreInput: 64 pseudo-random numbers in [0, 1000).
func scoreInput(client, i int) []int {
	x := uint32(client*100003 + i*7 + 1)
	out := make([]int, 64)
	for j := range out {
		x = x*1103515245 + 12345
		out[j] = int((x >> 8) % 1000)
	}
	return out
}

// expectedScore mirrors score() in gohttp.py.
func expectedScore(nums []int) int {
	total := 0
	for i, x := range nums {
		total += (x*x + i*7) % 1009
		if x%3 == 0 {
			total ^= i
		}
	}
	return total
}

// expectedHello mirrors hello() in gohttp.py.
func expectedHello(name string) string {
	sum := 0
	for _, c := range []byte(name) {
		sum += int(c)
	}
	return "hello " + string(bytes.ToUpper([]byte(name))) + " " + strconv.Itoa(sum) + "\n"
}

// GoHttpStop stops the load generator, waits for it, shuts the server down
// (waiting for in-flight handlers) and fills out[0:n] with
// {requests_ok, errors, trampoline_calls, write_responses, served,
// load_ns} (load_ns: how long the load generator ran).
// Returns 0, or -1 if the server did not shut down cleanly.
//
//export GoHttpStop
func GoHttpStop(out *C.int64_t, n C.int) C.int {
	mu.Lock()
	defer mu.Unlock()
	rc := C.int(0)
	var loadNs int64
	if loadStop != nil {
		close(loadStop)
		loadWG.Wait()
		loadNs = time.Since(loadStart).Nanoseconds()
		if end := loadEnd.Load(); end > 0 {
			loadNs = end
		}
	}
	// Close the clients' idle connections first: the server's Shutdown
	// waits up to 5 s for a connection that never sent a request, and the
	// client's transport may hold such a spare connection.
	if loadClient != nil {
		loadClient.CloseIdleConnections()
	}
	if server != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := server.Shutdown(ctx); err != nil {
			rc = -1
		}
		cancel()
		<-serveErr
	}
	vals := []int64{
		atomic.LoadInt64(&stats.requestsOK),
		atomic.LoadInt64(&stats.requestErrors),
		atomic.LoadInt64(&stats.trampolineCalls),
		atomic.LoadInt64(&stats.writeResponses),
		atomic.LoadInt64(&stats.served),
		loadNs,
	}
	dst := unsafe.Slice((*int64)(unsafe.Pointer(out)), int(n))
	copy(dst, vals)
	return rc
}

func main() {}
