package snapshot

import (
	"net"
	"sort"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// serviceNameLabel links an EndpointSlice to its Service.
const serviceNameLabel = "kubernetes.io/service-name"

// resolveEndpoints returns the ready "ip:port" addresses behind port of svc.
// The Service port maps to an endpoint port by name (Kubernetes names
// endpoint ports after Service ports), else by number: the numeric
// targetPort, or the port itself when targetPort is unset.
func resolveEndpoints(svc *corev1.Service, port int, slices []*discoveryv1.EndpointSlice) []string {
	if svc == nil {
		return nil
	}
	var sp *corev1.ServicePort
	for i := range svc.Spec.Ports {
		if int(svc.Spec.Ports[i].Port) == port {
			sp = &svc.Spec.Ports[i]
			break
		}
	}
	if sp == nil {
		return nil
	}
	wantNumber := int32(sp.Port)
	if sp.TargetPort.Type == intstr.Int && sp.TargetPort.IntVal != 0 {
		wantNumber = sp.TargetPort.IntVal
	}
	seen := map[string]bool{}
	var out []string
	for _, s := range slices {
		if s.Namespace != svc.Namespace || s.Labels[serviceNameLabel] != svc.Name {
			continue
		}
		number, ok := slicePort(s, sp.Name, wantNumber)
		if !ok {
			continue
		}
		for _, ep := range s.Endpoints {
			// A nil Ready means unknown, which the API says to treat as ready.
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			if len(ep.Addresses) == 0 {
				continue
			}
			// All addresses of one endpoint are the same backend; one is enough.
			addr := net.JoinHostPort(ep.Addresses[0], strconv.Itoa(int(number)))
			if !seen[addr] {
				seen[addr] = true
				out = append(out, addr)
			}
		}
	}
	sort.Strings(out)
	return out
}

func slicePort(s *discoveryv1.EndpointSlice, name string, number int32) (int32, bool) {
	for _, p := range s.Ports {
		if p.Port == nil {
			continue
		}
		if p.Name != nil && *p.Name == name && name != "" {
			return *p.Port, true
		}
	}
	for _, p := range s.Ports {
		if p.Port != nil && *p.Port == number {
			return *p.Port, true
		}
	}
	// A single unnamed port is the common case for one-port Services.
	if len(s.Ports) == 1 && s.Ports[0].Port != nil && (s.Ports[0].Name == nil || *s.Ports[0].Name == "") && name == "" {
		return *s.Ports[0].Port, true
	}
	return 0, false
}
