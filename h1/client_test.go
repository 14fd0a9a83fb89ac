package h1

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestInterimAnswersBounded: a few 1xx heads before the answer are skipped;
// an upstream that sends nothing but them is refused, not read for ever.
func TestInterimAnswersBounded(t *testing.T) {
	read := func(interim int) (Answer, error) {
		in := strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", interim) + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
		c := &UpConn{br: bufio.NewReader(strings.NewReader(in))}
		c.body.c = c
		return c.ReadAnswer(http.MethodGet, http.Header{}, 4096, nil)
	}
	if a, err := read(maxInterim - 1); err != nil || a.Status != 200 {
		t.Errorf("%d interim answers: %+v, %v", maxInterim-1, a, err)
	}
	if _, err := read(maxInterim); err == nil {
		t.Errorf("%d interim answers, then the answer: accepted", maxInterim)
	}
}

// TestPoolBounds: idle connections are capped per address and in all, and
// those idle past IdleTimeout are closed even for an address nobody asks
// for again (an endpoint that went away).
func TestPoolBounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	p := &Pool{
		Dial: func(addr string, d time.Duration) (net.Conn, error) {
			return net.DialTimeout("tcp", ln.Addr().String(), d)
		},
		MaxIdlePerAddr: 2, MaxIdle: 3, IdleTimeout: time.Minute,
	}
	t0 := time.Now()
	put := func(addr string, at time.Time) {
		c, err := p.Get(addr, time.Second, at)
		if err != nil {
			t.Fatal(err)
		}
		c.done = true
		p.Put(c, at)
	}
	// Three connections to one address at once: two are kept.
	var held []*UpConn
	for range 3 {
		c, err := p.Get("a", time.Second, t0)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	for _, c := range held {
		c.done = true
		p.Put(c, t0)
	}
	if p.idleN != 2 || len(p.idle["a"]) != 2 {
		t.Fatalf("per address: %d idle, %d for a", p.idleN, len(p.idle["a"]))
	}
	put("b", t0)
	put("c", t0) // the overall cap of 3 is reached by b
	if p.idleN != 3 || len(p.idle["c"]) != 0 {
		t.Fatalf("overall: %d idle, %d for c", p.idleN, len(p.idle["c"]))
	}
	// Two minutes on, one put reaps everything idle past a minute.
	put("d", t0.Add(2*time.Minute))
	if p.idleN != 1 || len(p.idle) != 1 || len(p.idle["d"]) != 1 {
		t.Fatalf("after IdleTimeout: %d idle in %d addresses", p.idleN, len(p.idle))
	}
}
