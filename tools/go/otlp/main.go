// otlp-sink: an OTLP/HTTP trace receiver for tests. It decodes each export with the OpenTelemetry
// project's own generated protobuf types (an independent decoder from the SDK under test) and prints
// it as one JSON line on stdout. Loopback only; it keeps nothing.
//
//	otlp-sink [--listen 127.0.0.1:0]   first line: "listening on http://HOST:PORT"
package main

import (
	"bufio"
	"compress/gzip"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"

	tracev1 "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatalf("otlp-sink: %v", err)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	emit := func(line []byte) {
		mu.Lock()
		defer mu.Unlock()
		out.Write(line)
		out.WriteByte('\n')
		out.Flush()
	}
	emit([]byte("listening on http://" + ln.Addr().String()))

	http.HandleFunc("/v1/traces", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			http.Error(w, "only application/x-protobuf is accepted, got "+ct, http.StatusUnsupportedMediaType)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			gz, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = gz
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// ExportTraceServiceRequest and TracesData share their wire format (field 1: resource_spans).
		var data tracev1.TracesData
		if err := proto.Unmarshal(raw, &data); err != nil {
			http.Error(w, fmt.Sprintf("not an OTLP trace export: %v", err), http.StatusBadRequest)
			return
		}
		line, err := protojson.Marshal(&data)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		emit(line)
		// An empty ExportTraceServiceResponse: everything accepted.
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.WriteHeader(http.StatusOK)
	})
	log.Fatal(http.Serve(ln, nil))
}
