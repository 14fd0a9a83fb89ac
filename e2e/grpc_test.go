package e2e

import (
	"bytes"
	"context"
	binenc "encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
)

// testService is a real grpc-go server's TestService: every call shape.
type testService struct {
	testpb.UnimplementedTestServiceServer
}

func (testService) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if d := req.GetResponseSize(); d > 1000 {
		// A slow call: the response size is how many milliseconds to take.
		select {
		case <-time.After(time.Duration(d) * time.Millisecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
}

func (testService) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream grpc.ServerStreamingServer[testpb.StreamingOutputCallResponse]) error {
	for _, p := range req.GetResponseParameters() {
		body := bytes.Repeat([]byte{'s'}, int(p.GetSize()))
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

func (testService) StreamingInputCall(stream grpc.ClientStreamingServer[testpb.StreamingInputCallRequest, testpb.StreamingInputCallResponse]) error {
	total := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(total)})
		}
		if err != nil {
			return err
		}
		total += len(req.GetPayload().GetBody())
	}
}

func (testService) FullDuplexCall(stream grpc.BidiStreamingServer[testpb.StreamingOutputCallRequest, testpb.StreamingOutputCallResponse]) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// startGRPC serves testService on a loopback port.
func startGRPC(t *testing.T) *upstreamServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testpb.RegisterTestServiceServer(s, testService{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return &upstreamServer{addr: ln.Addr().String(), port: ln.Addr().(*net.TCPAddr).Port}
}

// TestGRPC: a real grpc-go client and server with the gateway between
// them, over HTTP/2 with prior knowledge on both sides.
func TestGRPC(t *testing.T) {
	up := startGRPC(t)
	dead := &upstreamServer{addr: "127.0.0.1:1", port: 1} // nothing listens there
	dir := t.TempDir()
	const svc = "/grpc.testing.TestService/"
	writeFile(t, filepath.Join(dir, "grpc.yaml"), serviceYAML("greeter",
		"kind: Mapping\nname: grpc\nprefix: "+svc+"\nrewrite: "+svc+"\nservice: greeter\ngrpc: true\n", up))
	writeFile(t, filepath.Join(dir, "dead.yaml"), serviceYAML("gone",
		"kind: Mapping\nname: gone\nhost: gone.example\nprefix: "+svc+"\nrewrite: "+svc+"\nservice: gone\ngrpc: true\nconnect_timeout_ms: 200\n", dead))
	g := startGateway(t, dir, "--breaker-failures", "1", "--breaker-open-timeout", "1m")

	conn, err := grpc.NewClient(strings.TrimPrefix(g.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Unary.
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}})
	if err != nil || string(resp.GetPayload().GetBody()) != "hello" {
		t.Fatalf("unary: %v, %v", resp, err)
	}

	// Server streaming: three messages, in order.
	out, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 70000}}})
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for {
		m, err := out.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("server streaming: %v", err)
		}
		sizes = append(sizes, len(m.GetPayload().GetBody()))
	}
	if fmt.Sprint(sizes) != "[1 2 70000]" {
		t.Fatalf("server streaming sizes %v", sizes)
	}

	// Client streaming.
	in, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{10, 20, 30000} {
		if err := in.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	sum, err := in.CloseAndRecv()
	if err != nil || sum.GetAggregatedPayloadSize() != 30030 {
		t.Fatalf("client streaming: %v, %v", sum, err)
	}

	// Bidirectional: each message answered before the next is sent, so the
	// gateway must pass both directions as they go.
	bidi, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		msg := fmt.Sprintf("ping-%d", i)
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(msg)}}); err != nil {
			t.Fatal(err)
		}
		got, err := bidi.Recv()
		if err != nil || string(got.GetPayload().GetBody()) != msg {
			t.Fatalf("bidi %d: %v, %v", i, got, err)
		}
	}
	bidi.CloseSend()
	if _, err := bidi.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("bidi end: %v", err)
	}

	// The client's deadline bounds the call at the gateway: a raw request
	// with grpc-timeout 100m and no deadline of its own gets
	// DEADLINE_EXCEEDED from the gateway, not a call left running.
	if st := rawGRPC(t, g.base, "", svc+"UnaryCall", "100m", slowRequest(5000)); st != "4" {
		t.Fatalf("grpc-timeout 100m on a 5 s call: grpc-status %q, want 4 (DEADLINE_EXCEEDED)", st)
	}
	// And through grpc-go, whose deadline travels as grpc-timeout.
	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err = client.UnaryCall(short, &testpb.SimpleRequest{ResponseSize: 5000})
	cancelShort()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("deadline: %v, want DEADLINE_EXCEEDED", err)
	}

	// A dead upstream: UNAVAILABLE, then the breaker opens (one failure)
	// and says so, still as a gRPC status, never an HTML or text page.
	gone, err := grpc.NewClient(strings.TrimPrefix(g.base, "http://"), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("gone.example"))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	goneClient := testpb.NewTestServiceClient(gone)
	for i, want := range []string{"unreachable", "circuit breaker"} {
		_, err := goneClient.UnaryCall(ctx, &testpb.SimpleRequest{})
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), want) {
			t.Fatalf("dead upstream, call %d: %v, want UNAVAILABLE saying %q", i, err, want)
		}
	}
	// No route: UNIMPLEMENTED.
	if st := rawGRPC(t, g.base, "", "/no.such.Service/Call", "", slowRequest(0)); st != "12" {
		t.Fatalf("no route: grpc-status %q, want 12 (UNIMPLEMENTED)", st)
	}
	t.Logf("gRPC through the gateway: unary, server streaming (1, 2, 70000 bytes), client streaming (30,030 bytes), 5 bidi round trips; grpc-timeout and a client deadline gave DEADLINE_EXCEEDED; a dead upstream UNAVAILABLE, then its open breaker UNAVAILABLE; no route UNIMPLEMENTED")
}

// slowRequest is a framed SimpleRequest whose response_size asks the test
// server to take ms milliseconds (field 2, varint).
func slowRequest(ms int) []byte {
	msg := binenc.AppendUvarint([]byte{0x10}, uint64(ms))
	if ms == 0 {
		msg = nil
	}
	frame := []byte{0, 0, 0, 0, 0}
	binenc.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	return append(frame, msg...)
}

// rawGRPC sends one gRPC request over HTTP/2 with prior knowledge, with
// no deadline of the client's own, and returns the grpc-status it got
// (from the headers of a trailers-only answer or the trailers).
func rawGRPC(t *testing.T, base, host, path, timeout string, body []byte) string {
	t.Helper()
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: &http.Transport{Protocols: p}, Timeout: 20 * time.Second}
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Content-Type", "application/grpc")
	req.Header.Set("Te", "trailers")
	if timeout != "" {
		req.Header.Set("Grpc-Timeout", timeout)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s: answered over HTTP/%d, want 2", path, resp.ProtoMajor)
	}
	if st := resp.Header.Get("Grpc-Status"); st != "" {
		return st
	}
	return resp.Trailer.Get("Grpc-Status")
}
