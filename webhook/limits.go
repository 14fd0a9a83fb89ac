package webhook

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The parser's limits on one annotation (annotations.Parse enforces the
// same figures; TestLimitsAgreeWithParser keeps the two in step until the
// annotations package exports them). They are checked here on the raw text
// so that a review over either is denied before any YAML is parsed, with a
// message naming the limit, instead of costing a parse that stops at the
// limit anyway.
const (
	maxAnnotationBytes     = 256 << 10
	maxAnnotationDocuments = 1000
)

// serviceMeta is the part of a Service the pre-parse limits read. Decoding
// only this keeps the check from building the rest of the object.
type serviceMeta struct {
	Metadata struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// overLimits denies a review whose annotations are larger or hold more YAML
// documents than the parser accepts, or returns nil to let review decide.
// It answers only what review would deny too: requests review lets through
// without parsing (other kinds and operations, updates that leave every
// annotation we read as it was) pass here as well, and an object that does
// not decode is left to review to report.
func (h *Handler) overLimits(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	if req.Kind.Group != "" || req.Kind.Kind != "Service" {
		return nil
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return nil
	}
	var svc serviceMeta
	if err := json.Unmarshal(req.Object.Raw, &svc); err != nil {
		return nil
	}
	if req.Operation == admissionv1.Update {
		var old serviceMeta
		if err := json.Unmarshal(req.OldObject.Raw, &old); err == nil && h.unchanged(old.Metadata.Annotations, svc.Metadata.Annotations) {
			return nil
		}
	}
	var problems []string
	for _, key := range h.keys {
		text, ok := svc.Metadata.Annotations[key]
		if !ok {
			continue
		}
		if len(text) > maxAnnotationBytes {
			problems = append(problems, fmt.Sprintf("%s: the annotation is %d bytes; at most %d (256 KiB) are allowed, so it was not parsed",
				key, len(text), maxAnnotationBytes))
			continue
		}
		if n := countDocuments(text); n > maxAnnotationDocuments {
			problems = append(problems, fmt.Sprintf("%s: the annotation holds %d YAML documents; at most %d are allowed, so it was not parsed",
				key, n, maxAnnotationDocuments))
		}
	}
	if len(problems) == 0 {
		return nil
	}
	ns := svc.Metadata.Namespace
	if ns == "" {
		ns = req.Namespace
	}
	resp := errored(http.StatusForbidden, fmt.Sprintf("Service %s/%s: %d problem(s) in its routing annotations:\n%s",
		ns, svc.Metadata.Name, len(problems), strings.Join(problems, "\n")))
	resp.Result.Reason = metav1.StatusReasonInvalid
	return resp
}

// unchanged reports whether every annotation the gateway reads is the same
// in old and cur: such an update is admitted without a look at the
// annotations, so an annotation that got in before a limit existed (or past
// a bypassed webhook) never blocks scaling or relabelling its Service.
func (h *Handler) unchanged(old, cur map[string]string) bool {
	for _, k := range h.keys {
		a, oka := old[k]
		b, okb := cur[k]
		if oka != okb || a != b {
			return false
		}
	}
	return true
}

// countDocuments counts the documents of a YAML stream that hold anything
// but comments, as the parser counts them against its limit, without
// parsing: a document starts at a "---" marker line (or at the stream's
// first content) and ends at the next "---" or "..." marker. YAML forbids
// those markers at the start of a line inside any scalar or collection, so
// a marker line is always a document boundary, and the count never falls
// below the parser's. Lines break where the YAML library breaks them.
func countDocuments(s string) int {
	s = strings.TrimPrefix(s, "\ufeff")
	n := 0
	content := false // the current document holds something
	for len(s) > 0 {
		line, rest := cutLine(s)
		s = rest
		switch {
		case isMarker(line, "---"):
			if content {
				n++
			}
			content = hasContent(line[3:])
		case isMarker(line, "..."):
			if content {
				n++
			}
			content = false
		case !content && strings.HasPrefix(line, "%"):
			// A directive (%YAML, %TAG) belongs to the next document's
			// header, not to a document of its own.
		case hasContent(strings.TrimPrefix(line, "\ufeff")):
			// The YAML library skips a byte order mark at the start of
			// any line, as YAML allows one before every document.
			content = true
		}
	}
	if content {
		n++
	}
	return n
}

// cutLine splits s after its first line break: LF, CRLF, CR, NEL, LS or PS,
// the breaks of the YAML library.
func cutLine(s string) (line, rest string) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\n':
			return s[:i], s[i+1:]
		case '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				return s[:i], s[i+2:]
			}
			return s[:i], s[i+1:]
		case 0xC2: // NEL is C2 85
			if i+1 < len(s) && s[i+1] == 0x85 {
				return s[:i], s[i+2:]
			}
		case 0xE2: // LS and PS are E2 80 A8 and E2 80 A9
			if i+2 < len(s) && s[i+1] == 0x80 && (s[i+2] == 0xA8 || s[i+2] == 0xA9) {
				return s[:i], s[i+3:]
			}
		}
	}
	return s, ""
}

// isMarker reports whether line is the document marker m ("---" or "...")
// at column 0, followed by a blank or nothing, as YAML requires.
func isMarker(line, m string) bool {
	return strings.HasPrefix(line, m) && (len(line) == len(m) || line[len(m)] == ' ' || line[len(m)] == '\t')
}

// hasContent reports whether a line (or what follows a marker) holds more
// than blanks and a comment.
func hasContent(s string) bool {
	s = strings.TrimLeft(s, " \t")
	return s != "" && s[0] != '#'
}
