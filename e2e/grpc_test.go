package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
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
	"google.golang.org/protobuf/proto"
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
	// The client's impatience is not the upstream's fault: with a breaker
	// that opens on one failure, the next call still goes through.
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("after the client deadlines: %v; they must not count against the upstream", err)
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

// TestGRPCWeb: a browser's gRPC-Web call (here from Go, over HTTP/1.1) is
// translated to gRPC for a real grpc-go server and the answer back, the
// status in the trailer frame; binary and text forms; a refusal by the
// gateway is a gRPC-Web status too.
func TestGRPCWeb(t *testing.T) {
	up := startGRPC(t)
	dir := t.TempDir()
	const svc = "/grpc.testing.TestService/"
	writeFile(t, filepath.Join(dir, "web.yaml"), serviceYAML("web",
		"kind: Mapping\nname: web\nprefix: "+svc+"\nrewrite: "+svc+"\nservice: web\ngrpc_web: true\n", up))
	writeFile(t, filepath.Join(dir, "empty.yaml"), serviceYAML("empty",
		"kind: Mapping\nname: empty\nhost: empty.example\nprefix: "+svc+"\nrewrite: "+svc+"\nservice: empty\ngrpc_web: true\n"))
	g := startGateway(t, dir)

	msg, err := proto.Marshal(&testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("from the browser")}})
	if err != nil {
		t.Fatal(err)
	}
	framed := append([]byte{0, 0, 0, 0, 0}, msg...)
	binenc.BigEndian.PutUint32(framed[1:], uint32(len(msg)))
	for _, text := range []bool{false, true} {
		body, ct := framed, "application/grpc-web+proto"
		if text {
			body, ct = []byte(base64.StdEncoding.EncodeToString(framed)), "application/grpc-web-text"
		}
		req, _ := http.NewRequest("POST", g.base+svc+"UnaryCall", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		req.Header.Set("X-Grpc-Web", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 1 || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/grpc-web") {
			t.Fatalf("text=%v: HTTP/%d %d %q", text, resp.ProtoMajor, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if text {
			raw = decodeWebText(t, raw)
		}
		messages, trailers := webFrames(t, raw)
		var got testpb.SimpleResponse
		if len(messages) != 1 || proto.Unmarshal(messages[0], &got) != nil || string(got.GetPayload().GetBody()) != "from the browser" {
			t.Fatalf("text=%v: messages %q", text, messages)
		}
		if !strings.Contains(trailers, "grpc-status: 0\r\n") {
			t.Fatalf("text=%v: trailer frame %q, want grpc-status 0", text, trailers)
		}
	}

	// No endpoints: the gateway's own 503 reaches the browser as
	// UNAVAILABLE in a trailer frame, with HTTP 200 as gRPC-Web wants.
	req, _ := http.NewRequest("POST", g.base+svc+"UnaryCall", bytes.NewReader(framed))
	req.Host = "empty.example"
	req.Header.Set("Content-Type", "application/grpc-web+proto")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if _, trailers := webFrames(t, raw); resp.StatusCode != 200 || !strings.Contains(trailers, "grpc-status: 14\r\n") {
		t.Fatalf("no endpoints: %d, trailers %q; want 200 and grpc-status 14", resp.StatusCode, trailers)
	}
	t.Logf("gRPC-Web: binary and text calls answered by a grpc-go server with grpc-status 0 in the trailer frame; no endpoints gave grpc-status 14")
}

// webFrames splits a gRPC-Web body into its messages and its trailer frame.
func webFrames(t *testing.T, b []byte) (messages [][]byte, trailers string) {
	t.Helper()
	for len(b) > 0 {
		if len(b) < 5 {
			t.Fatalf("a truncated frame: %q", b)
		}
		n := int(binenc.BigEndian.Uint32(b[1:5]))
		if len(b) < 5+n {
			t.Fatalf("a frame of %d bytes with %d left", n, len(b)-5)
		}
		if b[0]&0x80 != 0 {
			trailers = string(b[5 : 5+n])
		} else {
			messages = append(messages, b[5:5+n])
		}
		b = b[5+n:]
	}
	return messages, trailers
}

// decodeWebText decodes a gRPC-Web text answer: base64 in segments, each
// padded where the gateway flushed, so it is read a four-character group
// at a time as browsers' clients read it.
func decodeWebText(t *testing.T, b []byte) []byte {
	t.Helper()
	if len(b)%4 != 0 {
		t.Fatalf("a text answer of %d characters", len(b))
	}
	var out []byte
	for i := 0; i < len(b); i += 4 {
		group, err := base64.StdEncoding.DecodeString(string(b[i : i+4]))
		if err != nil {
			t.Fatalf("text answer at %d: %v", i, err)
		}
		out = append(out, group...)
	}
	return out
}
