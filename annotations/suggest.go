package annotations

import (
	"fmt"
	"strings"
)

// suggest returns the candidate the user most likely meant by word, or "".
// It catches the mistakes people make with these keys: wrong case, camelCase
// or kebab-case for snake_case, a missing unit suffix (timeout for
// timeout_ms), and small typos (at most two edits, counting a swap of
// neighbouring letters as one).
func suggest(word string, candidates []string) string {
	norm := normalizeKey(word)
	for _, c := range candidates {
		if strings.EqualFold(word, c) || normalizeKey(c) == norm {
			return c
		}
	}
	if len(word) >= 4 {
		for _, c := range candidates {
			if strings.HasPrefix(c, norm+"_") {
				return c
			}
		}
	}
	best, bestDist := "", 3
	lw := strings.ToLower(word)
	for _, c := range candidates {
		if d := EditDistance(lw, strings.ToLower(c)); d < bestDist {
			best, bestDist = c, d
		}
	}
	// Short words are a couple of edits away from almost anything.
	if best != "" && bestDist*2 > len(word) {
		return ""
	}
	return best
}

// maxSuggestions bounds the candidates one Parse compares words against, so
// that thousands of distinct unknown names cannot make Parse quadratic;
// past it, problems simply carry no suggestion.
const maxSuggestions = 20_000

// didYouMean formats a suggestion for appending to a message.
func (p *parser) didYouMean(word string, candidates []string) string {
	if p.suggested += len(candidates); p.suggested > maxSuggestions {
		return ""
	}
	return didYouMean(word, candidates)
}

func didYouMean(word string, candidates []string) string {
	if s := suggest(word, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// normalizeKey maps prefixExact, PrefixExact and prefix-exact to prefix_exact.
func normalizeKey(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 && (s[i-1] >= 'a' && s[i-1] <= 'z' || s[i-1] >= '0' && s[i-1] <= '9') {
				b.WriteByte('_')
			}
			b.WriteByte(c + 'a' - 'A')
		case c == '-':
			b.WriteByte('_')
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// EditDistance is the optimal string alignment distance over bytes (a swap
// of neighbouring letters counts as one edit), for did-you-mean
// suggestions; the names compared are ASCII. Inputs longer than 64 bytes
// count as 64 edits away: no name we suggest is that long, and a long
// unknown key must not cost quadratic time.
func EditDistance(a, b string) int {
	const maxLen = 64
	if len(a) > maxLen || len(b) > maxLen {
		return maxLen
	}
	var rows [3][maxLen + 1]int
	prev2, prev, cur := &rows[0], &rows[1], &rows[2]
	for j := 0; j <= len(b); j++ {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
