// Package api is the gateway's access to the Kubernetes API: REST clients
// for the three API groups it reads or writes, decoding with a scheme that
// knows those groups alone.
//
// client-go's clientset and informer factory would do the same work, but
// importing them registers every built-in API group at start and links
// their types, typed clients, listers, apply configurations and OpenAPI
// models into the executable; an idle gateway then carried about twice
// the resident memory it needs (docs/benchmarks.md). The calls here are
// the ones the gateway makes, each as the generated client makes it
// (protobuf preferred, the same parameters), so the API server sees the
// same requests.
package api

import (
	"errors"
	"fmt"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/flowcontrol"
)

// NewScheme returns a scheme of the API groups the gateway uses: core/v1
// (Services, Namespaces, Secrets, Events), discovery.k8s.io/v1
// (EndpointSlices) and admissionregistration.k8s.io/v1 (its
// ValidatingWebhookConfiguration). Each registration also adds the
// group's list options, watch events and Status, which requests and
// errors decode through.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme,
		discoveryv1.AddToScheme,
		admissionregistrationv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, fmt.Errorf("building the API scheme: %w", err)
		}
	}
	return s, nil
}

// Client talks to the API server for the gateway. It is safe for
// concurrent use; its methods return the API's errors as client-go's typed
// clients do, so apierrors.IsNotFound and the like work on them.
type Client struct {
	core      *rest.RESTClient // /api/v1
	discovery *rest.RESTClient // /apis/discovery.k8s.io/v1
	admission *rest.RESTClient // /apis/admissionregistration.k8s.io/v1
	params    runtime.ParameterCodec
}

// New returns a Client for the API server cfg points at. It treats cfg as
// kubernetes.NewForConfig does: cfg.UserAgent, or client-go's default;
// one HTTP client (and so one connection pool) for all groups; with
// cfg.QPS set, one token bucket of cfg.QPS and cfg.Burst shared by all
// groups, and without it client-go's default (5 per second, burst 10) for
// each group.
func New(cfg *rest.Config) (*Client, error) {
	c := *cfg
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	if c.RateLimiter == nil && c.QPS > 0 {
		if c.Burst <= 0 {
			return nil, errors.New("burst is required to be greater than 0 when RateLimiter is not set and QPS is set to greater than 0")
		}
		c.RateLimiter = flowcontrol.NewTokenBucketRateLimiter(c.QPS, c.Burst)
	}
	httpClient, err := rest.HTTPClientFor(&c)
	if err != nil {
		return nil, err
	}
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	// WithoutConversion: objects decode into the versioned Go types as
	// sent, with no internal version to convert through. CBOR joins JSON
	// and protobuf only when client-go's ClientsAllowCBOR gate is on, as
	// for the generated clients.
	codecs := rest.CodecFactoryForGeneratedClient(scheme, serializer.NewCodecFactory(scheme)).WithoutConversion()
	restClient := func(apiPath string, gv schema.GroupVersion) (*rest.RESTClient, error) {
		gc := c
		gc.APIPath = apiPath
		gc.GroupVersion = &gv
		gc.NegotiatedSerializer = codecs
		rc, err := rest.RESTClientForConfigAndClient(&gc, httpClient)
		if err != nil {
			return nil, fmt.Errorf("client for %s: %w", gv, err)
		}
		return rc, nil
	}
	out := &Client{params: runtime.NewParameterCodec(scheme)}
	if out.core, err = restClient("/api", corev1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if out.discovery, err = restClient("/apis", discoveryv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	if out.admission, err = restClient("/apis", admissionregistrationv1.SchemeGroupVersion); err != nil {
		return nil, err
	}
	return out, nil
}
