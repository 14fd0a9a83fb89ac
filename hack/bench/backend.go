package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
)

// backendArg makes this program run as the backend instead (see main).
const backendArg = "-internal-serve-backend"

// bodySize is the size of every backend answer.
const bodySize = 128

var (
	body         = bytes.Repeat([]byte("g"), bodySize)
	header       = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(bodySize) + "\r\n"
	keepResponse = append([]byte(header+"\r\n"), body...)
	lastResponse = append([]byte(header+"Connection: close\r\n\r\n"), body...)
)

// serveBackendFD serves the listener its parent passed as file descriptor 3.
// The parent binds it, so there is no window in which another process could
// take the port, and the parent knows the address before the child starts.
func serveBackendFD() error {
	ln, err := net.FileListener(os.NewFile(3, "backend listener"))
	if err != nil {
		return fmt.Errorf("using the inherited listener: %w", err)
	}
	return serveBackend(ln)
}

// serveBackend answers every request on ln with the same 200 and 128-byte
// body, keeping connections alive. It is a hand-written HTTP/1.1 responder
// rather than net/http because it shares a CPU with wrk and must cost far
// less per request than either proxy, so that neither proxy is measured
// against a slow backend; both proxies send it the same plain GETs.
func serveBackend(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		go serveBackendConn(c)
	}
}

func serveBackendConn(c net.Conn) {
	defer c.Close()
	r := bufio.NewReaderSize(c, 8192)
	w := bufio.NewWriterSize(c, 8192)
	for {
		closeAfter, err := readRequest(r)
		if err != nil {
			return
		}
		if closeAfter {
			w.Write(lastResponse)
			w.Flush()
			return
		}
		w.Write(keepResponse)
		// Pipelined requests already read get one write for all answers.
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// errUnsupported ends a connection whose request this backend cannot
// frame; neither proxy sends such requests.
var errUnsupported = errors.New("unsupported request framing")

// readRequest consumes one request (head and any Content-Length body) and
// says whether the client asked to close the connection afterwards.
func readRequest(r *bufio.Reader) (closeAfter bool, err error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		return false, err
	}
	// HTTP/1.0 closes unless asked otherwise; wrk and both proxies speak 1.1.
	closeAfter = bytes.HasSuffix(bytes.TrimRight(line, "\r\n"), []byte("HTTP/1.0"))
	length := 0
	for {
		line, err = r.ReadSlice('\n')
		if err != nil {
			return false, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return false, errUnsupported
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return false, errUnsupported
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return false, errUnsupported
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				closeAfter = true
			} else if bytes.EqualFold(value, []byte("keep-alive")) {
				closeAfter = false
			}
		}
	}
	if _, err := r.Discard(length); err != nil {
		return false, err
	}
	return closeAfter, nil
}
