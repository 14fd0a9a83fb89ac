package api

import (
	"context"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
)

// GetSecret reads the Secret namespace/name.
func (c *Client) GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	return out, c.get(ctx, c.core, "secrets", namespace, name, out)
}

// CreateSecret creates secret in namespace and returns it as stored.
func (c *Client) CreateSecret(ctx context.Context, namespace string, secret *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	return out, c.create(ctx, c.core, "secrets", namespace, secret, out)
}

// UpdateSecret replaces secret in namespace, conditional on its
// resourceVersion, and returns it as stored.
func (c *Client) UpdateSecret(ctx context.Context, namespace string, secret *corev1.Secret) (*corev1.Secret, error) {
	out := &corev1.Secret{}
	return out, c.update(ctx, c.core, "secrets", namespace, secret.Name, secret, out)
}

// GetValidatingWebhookConfiguration reads the ValidatingWebhookConfiguration
// name.
func (c *Client) GetValidatingWebhookConfiguration(ctx context.Context, name string) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	return out, c.get(ctx, c.admission, "validatingwebhookconfigurations", "", name, out)
}

// UpdateValidatingWebhookConfiguration replaces vwc, conditional on its
// resourceVersion, and returns it as stored.
func (c *Client) UpdateValidatingWebhookConfiguration(ctx context.Context, vwc *admissionregistrationv1.ValidatingWebhookConfiguration) (*admissionregistrationv1.ValidatingWebhookConfiguration, error) {
	out := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	return out, c.update(ctx, c.admission, "validatingwebhookconfigurations", "", vwc.Name, vwc, out)
}

// CreateEvent creates event in its own namespace and returns it as stored.
func (c *Client) CreateEvent(ctx context.Context, event *corev1.Event) (*corev1.Event, error) {
	out := &corev1.Event{}
	return out, c.create(ctx, c.core, "events", event.Namespace, event, out)
}

// get, create and update make the requests of a generated client's Get,
// Create and Update; namespace "" is for cluster-scoped resources.
func (c *Client) get(ctx context.Context, rc *rest.RESTClient, resource, namespace, name string, into runtime.Object) error {
	return rc.Get().
		UseProtobufAsDefault().
		NamespaceIfScoped(namespace, namespace != "").
		Resource(resource).
		Name(name).
		VersionedParams(&metav1.GetOptions{}, c.params).
		Do(ctx).
		Into(into)
}

func (c *Client) create(ctx context.Context, rc *rest.RESTClient, resource, namespace string, obj, into runtime.Object) error {
	return rc.Post().
		UseProtobufAsDefault().
		NamespaceIfScoped(namespace, namespace != "").
		Resource(resource).
		VersionedParams(&metav1.CreateOptions{}, c.params).
		Body(obj).
		Do(ctx).
		Into(into)
}

func (c *Client) update(ctx context.Context, rc *rest.RESTClient, resource, namespace, name string, obj, into runtime.Object) error {
	return rc.Put().
		UseProtobufAsDefault().
		NamespaceIfScoped(namespace, namespace != "").
		Resource(resource).
		Name(name).
		VersionedParams(&metav1.UpdateOptions{}, c.params).
		Body(obj).
		Do(ctx).
		Into(into)
}
