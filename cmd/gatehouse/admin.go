package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// routes --admin and explain --admin: the same answers as from files, from
// the snapshot a running gateway serves, through its admin API (server's
// admin.go). The formatting is the file mode's; only the data travels.

const (
	// adminTimeout bounds one question to the gateway, connecting and
	// reading its answer included: the admin API answers from memory.
	adminTimeout = 10 * time.Second
	// maxAdminAnswer bounds what is read of an answer: a route listing at
	// the budgets' limits for a large cluster is a few megabytes.
	maxAdminAnswer = 64 << 20
)

// adminOnly refuses an address adminGet cannot ask, and what --admin
// cannot honour: files, and flags about compiling them (the gateway
// compiled with its own).
func adminOnly(fs *flag.FlagSet, address string, files int) error {
	if _, err := adminEndpoint(address, "", nil); err != nil {
		return err
	}
	if files > 0 {
		return errors.New("--admin asks a running gateway: it cannot be combined with -f or files")
	}
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "admin", "o", "H":
		default:
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("%s: only for files; with --admin the gateway's own settings apply", strings.Join(bad, ", "))
	}
	return nil
}

// adminEndpoint is path on the admin listener at address: HOST:PORT as
// serve's --admin takes it, or an http(s) URL, maybe with a path prefix
// (a proxy in front).
func adminEndpoint(address, path string, query url.Values) (string, error) {
	raw := address
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("--admin %q: %w", address, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("--admin %q: want HOST:PORT or http://HOST:PORT", address)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + path
	u.RawPath = ""
	u.RawQuery = query.Encode()
	return u.String(), nil
}

// adminGet asks the admin API for path and decodes its JSON answer into
// v. The errors say which gateway was asked and what went wrong, in words
// for someone who may have the wrong address.
func adminGet(address, path string, query url.Values, v any) error {
	target, err := adminEndpoint(address, path, query)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("the gateway at %s did not answer within %s", address, adminTimeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the gateway's admin API at %s: %v", address, err)
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, maxAdminAnswer)
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("the gateway at %s answered %s: %s", address, resp.Status, answerError(body, mt))
	}
	if mt != "application/json" {
		return fmt.Errorf("%s answered %q, not JSON: is %s the gateway's admin address (serve --admin)?", target, resp.Header.Get("Content-Type"), address)
	}
	if err := json.NewDecoder(body).Decode(v); err != nil {
		return fmt.Errorf("reading the answer of the gateway at %s: %w", address, err)
	}
	return nil
}

// answerError is what an error answer says: the admin API's {"error"},
// else the first line of whatever else answered (a 404 page, a proxy's
// error), cut short.
func answerError(body io.Reader, mediaType string) string {
	data, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	if mediaType == "application/json" {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return e.Error
		}
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(data)), "\n")
	if len(line) > 200 {
		line = line[:200] + "…"
	}
	if line == "" {
		return "(no message)"
	}
	return line + " (is this the gateway's admin address, serve --admin?)"
}
