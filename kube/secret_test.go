package kube

import (
	"bytes"
	"context"
	"reflect"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// secret is a Secret as the API server returns it, with what the gateway
// must not keep: labels, annotations (last-applied holds the whole Secret
// again), managedFields, an owner and a data key beside the three it reads.
func secret(name, rv string, typ corev1.SecretType, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "shop", UID: types.UID("uid-" + name), ResourceVersion: rv,
			Labels: map[string]string{"app": "web"},
			Annotations: map[string]string{
				"kubectl.kubernetes.io/last-applied-configuration": `{"data":{"ca.key":"c2VjcmV0"}}`,
				"cert-manager.io/certificate-name":                 name,
			},
			ManagedFields:   []metav1.ManagedFieldsEntry{{Manager: "cert-manager"}},
			OwnerReferences: []metav1.OwnerReference{{Kind: "Certificate", Name: name}},
		},
		Type: typ,
		Data: map[string][]byte{},
	}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// trimmed is what the cache should hold of secret(name, rv, typ, ...): its
// identity, its type and data (nil for none).
func trimmed(name, rv string, typ corev1.SecretType, data map[string]string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop", UID: types.UID("uid-" + name), ResourceVersion: rv},
		Type:       typ,
	}
	if data != nil {
		s.Data = map[string][]byte{}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
	}
	return s
}

func TestTrimSecret(t *testing.T) {
	s := testSource()
	full := map[string]string{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY", "ca.key": "CA KEY", "password": "hunter2"}
	three := map[string]string{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY"}
	big := string(bytes.Repeat([]byte{'x'}, snapshot.MaxSecretData/2))
	for _, c := range []struct {
		name string
		in   *corev1.Secret
		want *corev1.Secret
	}{
		{"tls: identity, type and the three keys", secret("ca", "1", corev1.SecretTypeTLS, full), trimmed("ca", "1", corev1.SecretTypeTLS, three)},
		{"tls without a CA", secret("client", "1", corev1.SecretTypeTLS, map[string]string{"tls.crt": "C", "tls.key": "K"}),
			trimmed("client", "1", corev1.SecretTypeTLS, map[string]string{"tls.crt": "C", "tls.key": "K"})},
		{"tls, empty values kept (a CA-only Secret)", secret("ca", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA", "tls.crt": "", "tls.key": ""}),
			trimmed("ca", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA", "tls.crt": "", "tls.key": ""})},
		{"tls, none of the keys: empty data, not nil", secret("odd", "1", corev1.SecretTypeTLS, map[string]string{"password": "x"}),
			trimmed("odd", "1", corev1.SecretTypeTLS, map[string]string{})},
		{"tls at the bound", secret("big", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": big, "tls.crt": big, "password": big}),
			trimmed("big", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": big, "tls.crt": big})},
		{"tls over the bound: no data", secret("big", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": big, "tls.crt": big, "tls.key": "K"}),
			trimmed("big", "1", corev1.SecretTypeTLS, nil)},
		{"Opaque: no data", secret("db", "1", corev1.SecretTypeOpaque, full), trimmed("db", "1", corev1.SecretTypeOpaque, nil)},
		{"ServiceAccount token: no data", secret("sa", "1", corev1.SecretTypeServiceAccountToken, map[string]string{"token": "t", "ca.crt": "CA"}),
			trimmed("sa", "1", corev1.SecretTypeServiceAccountToken, nil)},
	} {
		got, err := s.trim(c.in)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: trimmed to\n%+v (%v)\nwant\n%+v", c.name, got, err, c.want)
			continue
		}
		if again, _ := s.trim(got); !reflect.DeepEqual(again, c.want) {
			t.Errorf("%s: not idempotent: %+v", c.name, again)
		}
	}
}

func TestSecretChanged(t *testing.T) {
	ca := map[string]string{"ca.crt": "CA", "tls.crt": "", "tls.key": ""}
	trim := func(sec *corev1.Secret) *corev1.Secret { return snapshot.TrimSecret(sec, nil) }
	relabelled := secret("ca", "2", corev1.SecretTypeTLS, ca)
	relabelled.Labels["renewed"] = "yes"
	relabelled.Annotations["cert-manager.io/issuer"] = "x"
	recreated := secret("ca", "2", corev1.SecretTypeTLS, ca)
	recreated.UID = "uid-other"
	big := string(bytes.Repeat([]byte{'x'}, snapshot.MaxSecretData+1))
	for _, c := range []struct {
		name     string
		old, cur *corev1.Secret
		want     bool
	}{
		{"same resourceVersion (relist)", secret("ca", "1", corev1.SecretTypeTLS, ca), secret("ca", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": "other"}), false},
		{"labels and annotations only", secret("ca", "1", corev1.SecretTypeTLS, ca), relabelled, false},
		{"a key nobody reads", secret("ca", "1", corev1.SecretTypeTLS, ca), secret("ca", "2", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA", "tls.crt": "", "tls.key": "", "x": "y"}), false},
		{"CA renewed", secret("ca", "1", corev1.SecretTypeTLS, ca), secret("ca", "2", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA2", "tls.crt": "", "tls.key": ""}), true},
		{"key added", secret("ca", "1", corev1.SecretTypeTLS, map[string]string{"tls.crt": "", "tls.key": ""}), secret("ca", "2", corev1.SecretTypeTLS, ca), true},
		{"grown over the bound", secret("ca", "1", corev1.SecretTypeTLS, ca), secret("ca", "2", corev1.SecretTypeTLS, map[string]string{"ca.crt": big, "tls.crt": "", "tls.key": ""}), true},
		{"deleted and created again", secret("ca", "1", corev1.SecretTypeTLS, ca), recreated, true},
		{"Opaque edited", secret("db", "1", corev1.SecretTypeOpaque, ca), secret("db", "2", corev1.SecretTypeOpaque, map[string]string{"ca.crt": "CA2"}), false},
	} {
		if got := secretChanged(trim(c.old), trim(c.cur), corev1.SecretTypeTLS); got != c.want {
			t.Errorf("%s: secretChanged = %v, want %v", c.name, got, c.want)
		}
	}
}

// gatedClient is a fakeClient whose Secrets cannot be listed until release
// is closed.
type gatedClient struct {
	fakeClient
	release chan struct{}
}

func (g gatedClient) Secrets(ns string, _ corev1.SecretType) cache.ListerWatcher {
	return g.listWatch(
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			select {
			case <-g.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return g.c.CoreV1().Secrets(ns).List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return g.c.CoreV1().Secrets(ns).Watch(ctx, o)
		})
}

// TestSourceSecrets drives the Secret informer with the fake clientset,
// which does not apply field selectors: it sends the Opaque Secret too, so
// keeping it out of the build is the Source's own doing.
func TestSourceSecrets(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clk := clocktesting.NewFakeClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	full := map[string]string{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY", "ca.key": "CA KEY"}
	client := fake.NewClientset(
		service("1", map[string]string{ourKey: "a1"}, 80),
		secret("upstream-ca", "1", corev1.SecretTypeTLS, full),
		secret("db-password", "1", corev1.SecretTypeOpaque, map[string]string{"password": "hunter2", "ca.crt": "CA"}),
	)
	// The Secrets' list waits until every other informer is watching (so
	// has synced): a first build that did not wait for the Secret cache
	// would then be made without the Secret. (Not a reactor: the fake
	// clientset runs those under one lock.)
	release := make(chan struct{})
	gated := gatedClient{fakeClient{client}, release}
	// Changes wait until the Secrets are watched: the fake clientset
	// loses changes made between an informer's list and its watch.
	var mu sync.Mutex
	watching := map[string]bool{}
	client.PrependWatchReactor("*", func(a k8stesting.Action) (bool, watch.Interface, error) {
		var opts metav1.ListOptions
		if wa, ok := a.(k8stesting.WatchActionImpl); ok {
			opts = wa.ListOptions
		}
		w, err := client.Tracker().Watch(a.GetResource(), a.GetNamespace(), opts)
		mu.Lock()
		watching[a.GetResource().Resource] = true
		mu.Unlock()
		return true, w, err
	})
	waitWatching := func(resources ...string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			mu.Lock()
			all := true
			for _, r := range resources {
				all = all && watching[r]
			}
			mu.Unlock()
			if all {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%v never all watched", resources)
			}
			time.Sleep(time.Millisecond)
		}
	}
	applied := make(chan snapshot.Input, 10)
	s := New(Config{
		Client: gated, Keys: []string{ourKey}, Clock: clk,
		UpdateEndpoints: func(snapshot.Input) { t.Error("a Secret change took the endpoints-only path") },
		Apply: func(in snapshot.Input) []snapshot.Report {
			applied <- in
			return nil
		},
	})
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	next := func(what string) snapshot.Input {
		t.Helper()
		select {
		case in := <-applied:
			return in
		case <-time.After(10 * time.Second):
			t.Fatalf("no Apply %s", what)
			return snapshot.Input{}
		}
	}
	// One change reaches Apply once the holdoff timer fires.
	settle := func(what string) snapshot.Input {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !clk.HasWaiters() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: the loop never armed its holdoff timer", what)
			}
			time.Sleep(time.Millisecond)
		}
		clk.Step(DefaultMaxDelay)
		return next(what)
	}
	names := func(in snapshot.Input) []string {
		var out []string
		for _, sec := range in.Secrets {
			out = append(out, sec.Namespace+"/"+sec.Name)
		}
		return out
	}

	waitWatching("services", "endpointslices", "namespaces")
	select {
	case in := <-applied:
		t.Fatalf("Apply before the Secret cache synced, with Secrets %v", names(in))
	default:
	}
	close(release)
	in := next("after the caches synced")
	want := trimmed("upstream-ca", "1", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA", "tls.crt": "CERT", "tls.key": "KEY"})
	if len(in.Secrets) != 1 || !reflect.DeepEqual(in.Secrets[0], want) {
		t.Fatalf("first Apply: Secrets %v, want only shop/upstream-ca, trimmed:\n%+v\ngot\n%+v", names(in), want, in.Secrets)
	}
	waitWatching("secrets")

	// A renewed certificate rebuilds, with the new data.
	renewed := secret("upstream-ca", "2", corev1.SecretTypeTLS, map[string]string{"ca.crt": "CA2", "tls.crt": "CERT", "tls.key": "KEY"})
	if _, err := client.CoreV1().Secrets("shop").Update(ctx, renewed, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	in = settle("after the Secret changed")
	if len(in.Secrets) != 1 || string(in.Secrets[0].Data["ca.crt"]) != "CA2" {
		t.Errorf("Apply after the renewal: Secrets %+v, want upstream-ca with ca.crt CA2", in.Secrets)
	}

	// An Opaque Secret sent all the same is never built with; a TLS
	// Secret created after it is, and its Apply shows both were seen.
	if _, err := client.CoreV1().Secrets("shop").Create(ctx, secret("api-token", "3", corev1.SecretTypeOpaque, map[string]string{"token": "t"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Secrets("shop").Create(ctx, secret("client", "4", corev1.SecretTypeTLS, map[string]string{"tls.crt": "C", "tls.key": "K"}), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	in = settle("after a TLS Secret was created")
	if got := names(in); !reflect.DeepEqual(got, []string{"shop/client", "shop/upstream-ca"}) {
		t.Errorf("Apply after the creations: Secrets %v, want shop/client and shop/upstream-ca, sorted", got)
	}

	// A deletion rebuilds without it.
	if err := client.CoreV1().Secrets("shop").Delete(ctx, "upstream-ca", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	in = settle("after the Secret was deleted")
	if got := names(in); !reflect.DeepEqual(got, []string{"shop/client"}) {
		t.Errorf("Apply after the deletion: Secrets %v, want shop/client", got)
	}
}
