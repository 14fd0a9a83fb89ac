package main

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestReadRequest(t *testing.T) {
	in := "GET / HTTP/1.1\r\nHost: a\r\n\r\n" +
		"POST /x HTTP/1.1\r\ncontent-length: 5\r\n\r\nhello" +
		"GET / HTTP/1.1\r\nConnection: close\r\n\r\n" +
		"GET / HTTP/1.0\r\n\r\n" +
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" +
		"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	for i, want := range []bool{false, false, true, true, false} {
		closeAfter, err := readRequest(r)
		if err != nil || closeAfter != want {
			t.Fatalf("request %d: readRequest = %v, %v; want %v, nil", i, closeAfter, err, want)
		}
	}
	if _, err := readRequest(r); err != errUnsupported {
		t.Errorf("chunked request: err = %v, want errUnsupported", err)
	}
	if _, err := readRequest(r); err != io.EOF {
		t.Errorf("after the last request: err = %v, want EOF", err)
	}
}

// TestBackendServesHTTP checks the hand-written backend against Go's own
// client, keep-alive included.
func TestBackendServesHTTP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go serveBackend(ln)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	for i := 0; i < 3; i++ {
		resp, err := client.Get("http://" + ln.Addr().String() + "/any/path")
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || len(b) != bodySize || resp.Close {
			t.Fatalf("request %d: status %d, %d bytes, close %v, err %v", i, resp.StatusCode, len(b), resp.Close, err)
		}
	}
}
