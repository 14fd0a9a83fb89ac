package router

import "strings"

// maxQueryParams is net/url's default limit: url.ParseQuery returns no
// parameters at all for a query with more, and the router agrees with what
// handlers behind it will see.
const maxQueryParams = 10000

func tooManyParams(query string) bool {
	// More than maxQueryParams pairs needs at least maxQueryParams '&'s; the
	// length test spares the count on ordinary queries.
	return len(query) >= maxQueryParams && strings.Count(query, "&") >= maxQueryParams
}

// firstQueryValue returns the still-escaped value of the first pair in query
// whose name unescapes to name, skipping the pairs url.ParseQuery drops:
// empty ones, those holding ';' and those with a malformed %-escape in the
// name or the value. It scans in place and does not allocate.
func firstQueryValue(query, name string) (string, bool) {
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		if pair == "" || strings.IndexByte(pair, ';') >= 0 {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if unescapedEqual(k, name) && validEscapes(v) {
			return v, true
		}
	}
	return "", false
}

// unescapedEqual reports whether raw is well-formed and query-unescapes to
// want, decoding on the fly instead of into a buffer.
func unescapedEqual(raw, want string) bool {
	j := 0
	for i := 0; i < len(raw); j++ {
		c := raw[i]
		switch c {
		case '%':
			if i+2 >= len(raw) || !ishex(raw[i+1]) || !ishex(raw[i+2]) {
				return false
			}
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 3
		case '+':
			c = ' '
			i++
		default:
			i++
		}
		if j >= len(want) || want[j] != c {
			return false
		}
	}
	return j == len(want)
}

func validEscapes(raw string) bool {
	for i := strings.IndexByte(raw, '%'); i >= 0; {
		if i+2 >= len(raw) || !ishex(raw[i+1]) || !ishex(raw[i+2]) {
			return false
		}
		next := strings.IndexByte(raw[i+3:], '%')
		if next < 0 {
			break
		}
		i += 3 + next
	}
	return true
}

func needsUnescape(raw string) bool {
	return strings.IndexByte(raw, '%') >= 0 || strings.IndexByte(raw, '+') >= 0
}

// appendUnescaped appends the query-unescaped form of raw, which must have
// passed validEscapes.
func appendUnescaped(dst []byte, raw string) []byte {
	for i := 0; i < len(raw); {
		switch c := raw[i]; c {
		case '%':
			dst = append(dst, unhex(raw[i+1])<<4|unhex(raw[i+2]))
			i += 3
		case '+':
			dst = append(dst, ' ')
			i++
		default:
			dst = append(dst, c)
			i++
		}
	}
	return dst
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
