package kube

import (
	"maps"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/gatehouse-dev/gatehouse/snapshot"
)

// serviceNameLabel links an EndpointSlice to its Service; managedByLabel
// says whether the EndpointSlice controller wrote it, which decides whether
// a Service with a selector trusts it. They are the labels the snapshot
// builder reads.
const (
	serviceNameLabel = "kubernetes.io/service-name"
	managedByLabel   = "endpointslice.kubernetes.io/managed-by"
)

// trim is the informers' TransformFunc: it cuts objects down to what the
// gateway reads before they enter the cache. A cluster has many Services and
// few of them carry our annotations; the others matter only as route
// targets, for their ports. managedFields and kubectl's
// last-applied-configuration annotation usually outweigh the rest of the
// object, so keeping them would roughly double the cache for nothing.
//
// client-go (≥ 1.27) would let trim change objects in place, since they
// come straight from the decoder; trim copies the top level anyway, which
// costs little and stays right with watch sources that share objects (the
// fake clientset does). trim is idempotent, as the cache requires: a
// trimmed object trims to itself.
func (s *Source) trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Service:
		return s.trimService(o), nil
	case *discoveryv1.EndpointSlice:
		return trimSlice(o), nil
	case *corev1.Secret:
		return snapshot.TrimSecret(o, s.hashKey), nil
	}
	// cache.DeletedFinalStateUnknown and anything else pass untouched.
	return obj, nil
}

func (s *Source) trimService(svc *corev1.Service) *corev1.Service {
	ours := s.ours(svc.Annotations)
	if ours == nil {
		// Only a possible route target: name and ports are what resolving
		// a Mapping's service reads, the resourceVersion keeps the door
		// filter working, and the creation time, a few bytes, keeps every
		// cached Service sortable the way the builder sorts annotated ones.
		return &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{
				Name:              svc.Name,
				Namespace:         svc.Namespace,
				ResourceVersion:   svc.ResourceVersion,
				CreationTimestamp: svc.CreationTimestamp,
			},
			Spec: targetSpec(svc),
		}
	}
	// Annotated: the same, plus our annotations and the UID, which Events
	// about the Service refer to. Labels, the selector, cluster IPs and the
	// status are not read, and at 10,000 Services they add up.
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{
			Name:              svc.Name,
			Namespace:         svc.Namespace,
			UID:               svc.UID,
			ResourceVersion:   svc.ResourceVersion,
			CreationTimestamp: svc.CreationTimestamp,
			Annotations:       ours,
		},
		Spec: targetSpec(svc),
	}
}

// targetSpec is what resolving a route's target reads of a Service
// (snapshot/endpoints.go): its ports; whether it has a selector, which
// decides whether tenant-written EndpointSlices count; its cluster IPs,
// which hand-written endpoints of other namespaces may not name; and what
// an ExternalName Service points at.
func targetSpec(svc *corev1.Service) corev1.ServiceSpec {
	return corev1.ServiceSpec{
		Ports:        svc.Spec.Ports,
		Selector:     svc.Spec.Selector,
		Type:         svc.Spec.Type,
		ExternalName: svc.Spec.ExternalName,
		ClusterIP:    svc.Spec.ClusterIP,
		ClusterIPs:   svc.Spec.ClusterIPs,
	}
}

func trimSlice(es *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	c := *es
	c.ManagedFields = nil
	c.Annotations = nil
	c.OwnerReferences = nil
	c.Labels = nil
	for _, k := range [...]string{serviceNameLabel, managedByLabel} {
		if v, ok := es.Labels[k]; ok {
			if c.Labels == nil {
				c.Labels = make(map[string]string, 2)
			}
			c.Labels[k] = v
		}
	}
	if es.Endpoints != nil {
		c.Endpoints = make([]discoveryv1.Endpoint, len(es.Endpoints))
		for i, ep := range es.Endpoints {
			// Which pod or node backs an address is not ours to know.
			ep.TargetRef = nil
			ep.DeprecatedTopology = nil
			c.Endpoints[i] = ep
		}
	}
	return &c
}

// trimNamespace keeps of a Namespace its name, resourceVersion and the
// annotations the builder reads (snapshot.NamespaceKeys: grants,
// delegations, allowed hosts): a cluster may have thousands of
// Namespaces, and the gateway reads nothing else of them.
func trimNamespace(obj any) (any, error) {
	ns, ok := obj.(*corev1.Namespace)
	if !ok {
		return obj, nil
	}
	// The UID too: Events on the Namespace refer to it, and kubectl
	// describe finds them by it.
	out := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion}}
	for _, k := range snapshot.NamespaceKeys() {
		if v, ok := ns.Annotations[k]; ok {
			if out.Annotations == nil {
				out.Annotations = map[string]string{}
			}
			out.Annotations[k] = v
		}
	}
	return out, nil
}

// namespaceConfig is what of a Namespace the builder reads, as one
// string: "" when it has none of those annotations, and different
// whenever one of them changes.
func namespaceConfig(ns *corev1.Namespace) string {
	var b strings.Builder
	for _, k := range snapshot.NamespaceKeys() {
		if v, ok := ns.Annotations[k]; ok {
			b.WriteString(k)
			b.WriteByte('=')
			b.WriteString(v)
			b.WriteByte(0)
		}
	}
	return b.String()
}

// ours returns the annotations among m that the gateway reads, or nil when
// there are none.
func (s *Source) ours(m map[string]string) map[string]string {
	var out map[string]string
	for _, k := range s.keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = make(map[string]string, len(s.keys))
			}
			out[k] = v
		}
	}
	return out
}

// serviceChanged decides at the door whether an update can change a
// snapshot. Resyncs and relists after a reconnect deliver the same
// resourceVersion; label, status and unrelated annotation edits change
// nothing the builder reads.
func (s *Source) serviceChanged(old, cur *corev1.Service) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	return !maps.Equal(s.ours(old.Annotations), s.ours(cur.Annotations)) ||
		!apiequality.Semantic.DeepEqual(targetSpec(old), targetSpec(cur))
}

// sliceChanged is serviceChanged for EndpointSlices: only the endpoints,
// their ports and which Service they belong to matter.
func sliceChanged(old, cur *discoveryv1.EndpointSlice) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	return old.Labels[serviceNameLabel] != cur.Labels[serviceNameLabel] ||
		old.Labels[managedByLabel] != cur.Labels[managedByLabel] ||
		old.AddressType != cur.AddressType ||
		!apiequality.Semantic.DeepEqual(old.Ports, cur.Ports) ||
		!apiequality.Semantic.DeepEqual(old.Endpoints, cur.Endpoints)
}

// deletedObject unwraps the tombstone an informer hands over when it missed
// a delete while disconnected.
func deletedObject(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}
