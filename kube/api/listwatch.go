package api

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
)

// Services lists and watches the Services of namespace, of all namespaces
// when it is corev1.NamespaceAll (""), for an informer.
func (c *Client) Services(namespace string) cache.ListerWatcher {
	return c.listWatch(c.core, "services", namespace, "", func() runtime.Object { return &corev1.ServiceList{} })
}

// EndpointSlices lists and watches the EndpointSlices of namespace, of all
// namespaces when it is corev1.NamespaceAll (""), for an informer.
func (c *Client) EndpointSlices(namespace string) cache.ListerWatcher {
	return c.listWatch(c.discovery, "endpointslices", namespace, "", func() runtime.Object { return &discoveryv1.EndpointSliceList{} })
}

// Namespaces lists and watches Namespaces, for an informer.
func (c *Client) Namespaces() cache.ListerWatcher {
	return c.listWatch(c.core, "namespaces", "", "", func() runtime.Object { return &corev1.NamespaceList{} })
}

// SecretSelector is the field selector Secrets sends for typ: the API
// server filters by type, so Secrets of every other type (ServiceAccount
// tokens, registry credentials, applications' own) are never sent to the
// gateway at all, rather than sent and dropped. RBAC cannot enforce it (a
// rule cannot name a field selector); it is the gateway's own restraint.
func SecretSelector(typ corev1.SecretType) string { return "type=" + string(typ) }

// Secrets lists and watches the Secrets of type typ of namespace, of all
// namespaces when it is corev1.NamespaceAll (""), for an informer. Every
// request carries SecretSelector(typ), whatever field selector the caller
// passed (the reflector passes none).
func (c *Client) Secrets(namespace string, typ corev1.SecretType) cache.ListerWatcher {
	return c.listWatch(c.core, "secrets", namespace, SecretSelector(typ), func() runtime.Object { return &corev1.SecretList{} })
}

// listWatch makes the list and watch requests of a generated client's List
// and Watch. The reflector passes the options (resourceVersion, limit and
// continue for paging, timeoutSeconds, bookmarks, and sendInitialEvents
// when it streams the initial list); they go through as given, except that
// fieldSelector, when not "", replaces the options' own.
func (c *Client) listWatch(rc *rest.RESTClient, resource, namespace, fieldSelector string, newList func() runtime.Object) cache.ListerWatcher {
	req := func(opts *metav1.ListOptions) *rest.Request {
		if fieldSelector != "" {
			opts.FieldSelector = fieldSelector
		}
		return rc.Get().
			UseProtobufAsDefault().
			NamespaceIfScoped(namespace, namespace != "").
			Resource(resource).
			VersionedParams(opts, c.params).
			Timeout(timeout(opts))
	}
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			list := newList()
			err := req(&opts).Do(ctx).Into(list)
			return list, err
		},
		WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			opts.Watch = true
			return req(&opts).Watch(ctx)
		},
	}
}

// timeout is the client-side bound the generated clients put on a list or
// watch that asks the server for one; 0 leaves it to the HTTP client.
func timeout(opts *metav1.ListOptions) time.Duration {
	if opts.TimeoutSeconds == nil {
		return 0
	}
	return time.Duration(*opts.TimeoutSeconds) * time.Second
}
