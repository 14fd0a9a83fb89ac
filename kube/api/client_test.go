package api

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
)

// Only the request each method makes is checked here (path, query,
// headers, body encoding) and that answers and errors decode; the e2e tests
// run the methods against a real API server.

// request is what the fake API server saw.
type request struct {
	method, path, query, accept, contentType, userAgent string
	body                                                runtime.Object
}

// fakeServer answers every request with the status and JSON body answer
// returns for it, and keeps the requests, their bodies decoded.
func fakeServer(t *testing.T, answer func(r *http.Request) (int, any)) (*Client, func() []request) {
	t.Helper()
	scheme, err := NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	decoder := serializer.NewCodecFactory(scheme).UniversalDeserializer()
	var mu sync.Mutex
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := request{
			method: r.Method, path: r.URL.Path, query: r.URL.RawQuery, accept: r.Header.Get("Accept"),
			contentType: r.Header.Get("Content-Type"), userAgent: r.Header.Get("User-Agent"),
		}
		if b, _ := io.ReadAll(r.Body); len(b) > 0 {
			obj, _, err := decoder.Decode(b, nil, nil)
			if err != nil {
				t.Errorf("%s %s: decoding the body: %v", r.Method, r.URL.Path, err)
			}
			req.body = obj
		}
		mu.Lock()
		seen = append(seen, req)
		mu.Unlock()
		code, body := answer(r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		if err := json.NewEncoder(w).Encode(body); err != nil {
			t.Error(err)
		}
	}))
	t.Cleanup(srv.Close)
	c, err := New(&rest.Config{Host: srv.URL, UserAgent: "gatehouse/test"})
	if err != nil {
		t.Fatal(err)
	}
	return c, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

func TestListWatch(t *testing.T) {
	c, seen := fakeServer(t, func(r *http.Request) (int, any) {
		if r.URL.Query().Get("watch") == "true" {
			// One event, then the stream ends.
			return http.StatusOK, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{
				Raw: []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","resourceVersion":"9"}}`),
			}}
		}
		if strings.HasSuffix(r.URL.Path, "/endpointslices") {
			return http.StatusOK, discoveryv1.EndpointSliceList{
				TypeMeta: metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSliceList"},
				Items:    []discoveryv1.EndpointSlice{{ObjectMeta: metav1.ObjectMeta{Name: "web-x", Namespace: "shop"}}},
			}
		}
		return http.StatusOK, corev1.ServiceList{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ServiceList"},
			ListMeta: metav1.ListMeta{ResourceVersion: "8"},
			Items:    []corev1.Service{{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}}},
		}
	})
	lw := c.Services("shop")
	obj, err := lw.List(metav1.ListOptions{ResourceVersion: "0", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := obj.(*corev1.ServiceList); !ok || len(l.Items) != 1 || l.Items[0].Name != "web" || l.ResourceVersion != "8" {
		t.Errorf("List: %#v", obj)
	}
	if _, err := c.Services("").List(metav1.ListOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err = c.EndpointSlices("").List(metav1.ListOptions{})
	if l, ok := obj.(*discoveryv1.EndpointSliceList); err != nil || !ok || len(l.Items) != 1 || l.Items[0].Name != "web-x" {
		t.Errorf("List of EndpointSlices: %v, %#v", err, obj)
	}
	timeout := int64(300)
	w, err := c.Namespaces().Watch(metav1.ListOptions{ResourceVersion: "8", TimeoutSeconds: &timeout, AllowWatchBookmarks: true})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if ns, ok := ev.Object.(*corev1.Namespace); ev.Type != watch.Added || !ok || ns.Name != "shop" {
			t.Errorf("watch event %v %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	w.Stop()

	want := []request{
		{method: "GET", path: "/api/v1/namespaces/shop/services", query: "limit=500&resourceVersion=0"},
		{method: "GET", path: "/api/v1/services"},
		{method: "GET", path: "/apis/discovery.k8s.io/v1/endpointslices"},
		{method: "GET", path: "/api/v1/namespaces", query: "allowWatchBookmarks=true&resourceVersion=8&timeout=5m0s&timeoutSeconds=300&watch=true"},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.method != w.method || g.path != w.path || g.query != w.query {
			t.Errorf("request %d: %s %s?%s, want %s %s?%s", i, g.method, g.path, g.query, w.method, w.path, w.query)
		}
		// As the generated clients ask for built-in types.
		if g.accept != "application/vnd.kubernetes.protobuf,application/json" || g.userAgent != "gatehouse/test" {
			t.Errorf("request %d: Accept %q, User-Agent %q", i, g.accept, g.userAgent)
		}
	}
}

// TestTLSSecrets: every list and watch of Secrets asks the API server for
// type kubernetes.io/tls alone, whatever selector the caller passed, so no
// other Secret is ever sent to the gateway.
func TestTLSSecrets(t *testing.T) {
	c, seen := fakeServer(t, func(r *http.Request) (int, any) {
		if r.URL.Query().Get("watch") == "true" {
			return http.StatusOK, metav1.WatchEvent{Type: "ADDED", Object: runtime.RawExtension{
				Raw: []byte(`{"apiVersion":"v1","kind":"Secret","type":"kubernetes.io/tls","metadata":{"name":"ca","namespace":"shop","resourceVersion":"4"}}`),
			}}
		}
		return http.StatusOK, corev1.SecretList{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "SecretList"},
			ListMeta: metav1.ListMeta{ResourceVersion: "3"},
			Items:    []corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "ca", Namespace: "shop"}, Type: corev1.SecretTypeTLS}},
		}
	})
	obj, err := c.Secrets("shop", corev1.SecretTypeTLS).List(metav1.ListOptions{ResourceVersion: "0", Limit: 500})
	if l, ok := obj.(*corev1.SecretList); err != nil || !ok || len(l.Items) != 1 || l.Items[0].Name != "ca" {
		t.Errorf("List: %v, %#v", err, obj)
	}
	if _, err := c.Secrets("", corev1.SecretTypeTLS).List(metav1.ListOptions{FieldSelector: "type=Opaque"}); err != nil {
		t.Fatal(err)
	}
	timeout := int64(60)
	w, err := c.Secrets("", corev1.SecretTypeTLS).Watch(metav1.ListOptions{ResourceVersion: "3", TimeoutSeconds: &timeout, FieldSelector: "metadata.name=x"})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-w.ResultChan():
		if s, ok := ev.Object.(*corev1.Secret); !ok || s.Type != corev1.SecretTypeTLS {
			t.Errorf("watch event %v %#v", ev.Type, ev.Object)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event")
	}
	w.Stop()

	want := []struct {
		path string
		rest url.Values // the query but for fieldSelector
	}{
		{"/api/v1/namespaces/shop/secrets", url.Values{"limit": {"500"}, "resourceVersion": {"0"}}},
		{"/api/v1/secrets", url.Values{}},
		{"/api/v1/secrets", url.Values{"resourceVersion": {"3"}, "timeout": {"1m0s"}, "timeoutSeconds": {"60"}, "watch": {"true"}}},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		q, err := url.ParseQuery(g.query)
		if err != nil {
			t.Fatal(err)
		}
		if sel := q["fieldSelector"]; len(sel) != 1 || sel[0] != "type=kubernetes.io/tls" {
			t.Errorf("request %d (%s?%s): fieldSelector %q, want exactly type=kubernetes.io/tls", i, g.path, g.query, sel)
		}
		q.Del("fieldSelector")
		if g.method != "GET" || g.path != want[i].path || q.Encode() != want[i].rest.Encode() {
			t.Errorf("request %d: %s %s?%s, want GET %s with %s", i, g.method, g.path, g.query, want[i].path, want[i].rest.Encode())
		}
	}
}

func TestObjects(t *testing.T) {
	c, seen := fakeServer(t, func(r *http.Request) (int, any) {
		switch {
		case r.Method == "GET" && strings.HasSuffix(r.URL.Path, "/secrets/missing"):
			return http.StatusNotFound, metav1.Status{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
				Reason: metav1.StatusReasonNotFound, Code: http.StatusNotFound, Message: `secrets "missing" not found`,
			}
		case r.Method == "PUT" && strings.HasSuffix(r.URL.Path, "/secrets/certs"):
			return http.StatusConflict, metav1.Status{
				TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"}, Status: metav1.StatusFailure,
				Reason: metav1.StatusReasonConflict, Code: http.StatusConflict, Message: "the object has been modified",
			}
		case strings.Contains(r.URL.Path, "validatingwebhookconfigurations"):
			return http.StatusOK, admissionregistrationv1.ValidatingWebhookConfiguration{
				TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "ValidatingWebhookConfiguration"},
				ObjectMeta: metav1.ObjectMeta{Name: "gatehouse", ResourceVersion: "5"},
			}
		case strings.HasSuffix(r.URL.Path, "/events"):
			return http.StatusCreated, corev1.Event{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Event"},
				ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "shop", ResourceVersion: "6"},
			}
		default:
			return http.StatusOK, corev1.Secret{
				TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
				ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: "gatehouse-system", ResourceVersion: "3"},
			}
		}
	})
	ctx := context.Background()
	if sec, err := c.GetSecret(ctx, "gatehouse-system", "certs"); err != nil || sec.ResourceVersion != "3" {
		t.Errorf("GetSecret: %v, %+v", err, sec)
	}
	if _, err := c.GetSecret(ctx, "gatehouse-system", "missing"); !apierrors.IsNotFound(err) {
		t.Errorf("GetSecret of a missing Secret: %v, want NotFound", err)
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "certs", Namespace: "gatehouse-system"}, Data: map[string][]byte{"tls.crt": []byte("x")}}
	if _, err := c.CreateSecret(ctx, "gatehouse-system", secret); err != nil {
		t.Errorf("CreateSecret: %v", err)
	}
	if _, err := c.UpdateSecret(ctx, "gatehouse-system", secret); !apierrors.IsConflict(err) {
		t.Errorf("UpdateSecret on a conflict: %v, want Conflict", err)
	}
	vwc, err := c.GetValidatingWebhookConfiguration(ctx, "gatehouse")
	if err != nil || vwc.ResourceVersion != "5" {
		t.Fatalf("GetValidatingWebhookConfiguration: %v, %+v", err, vwc)
	}
	if _, err := c.UpdateValidatingWebhookConfiguration(ctx, vwc); err != nil {
		t.Errorf("UpdateValidatingWebhookConfiguration: %v", err)
	}
	ev := &corev1.Event{ObjectMeta: metav1.ObjectMeta{Name: "web.1", Namespace: "shop"}, Reason: "Programmed"}
	if got, err := c.CreateEvent(ctx, ev); err != nil || got.ResourceVersion != "6" {
		t.Errorf("CreateEvent: %v, %+v", err, got)
	}

	const protobuf = "application/vnd.kubernetes.protobuf"
	want := []struct {
		method, path, contentType string
		body                      runtime.Object
	}{
		{"GET", "/api/v1/namespaces/gatehouse-system/secrets/certs", "", nil},
		{"GET", "/api/v1/namespaces/gatehouse-system/secrets/missing", "", nil},
		{"POST", "/api/v1/namespaces/gatehouse-system/secrets", protobuf, &corev1.Secret{}},
		{"PUT", "/api/v1/namespaces/gatehouse-system/secrets/certs", protobuf, &corev1.Secret{}},
		{"GET", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/gatehouse", "", nil},
		{"PUT", "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/gatehouse", protobuf, &admissionregistrationv1.ValidatingWebhookConfiguration{}},
		{"POST", "/api/v1/namespaces/shop/events", protobuf, &corev1.Event{}},
	}
	got := seen()
	if len(got) != len(want) {
		t.Fatalf("%d requests, want %d: %+v", len(got), len(want), got)
	}
	for i, g := range got {
		w := want[i]
		if g.method != w.method || g.path != w.path || g.query != "" || g.contentType != w.contentType {
			t.Errorf("request %d: %s %s?%s (%s), want %s %s (%s)", i, g.method, g.path, g.query, g.contentType, w.method, w.path, w.contentType)
		}
		switch {
		case w.body == nil && g.body != nil:
			t.Errorf("request %d: a %T body", i, g.body)
		case w.body != nil && (g.body == nil || g.body.GetObjectKind().GroupVersionKind().Kind == ""):
			t.Errorf("request %d: body %#v, want a %T", i, g.body, w.body)
		}
	}
	if s, ok := got[2].body.(*corev1.Secret); !ok || string(s.Data["tls.crt"]) != "x" {
		t.Errorf("CreateSecret sent %#v", got[2].body)
	}
}

func TestNewChecksRateLimits(t *testing.T) {
	if _, err := New(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 5}); err == nil || !strings.Contains(err.Error(), "burst") {
		t.Errorf("QPS without a burst: %v", err)
	}
	if _, err := New(&rest.Config{Host: "https://127.0.0.1:6443", QPS: 5, Burst: 10}); err != nil {
		t.Errorf("QPS and burst: %v", err)
	}
}
