package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// The checks below decide whether the proxy serves a request at all. They
// run before anything is read, reserved or forwarded, and every refusal is
// in the API's error shape.
//
//   - Host: a web page can make a browser send requests to a proxy on a
//     workstation by rebinding its own DNS name to 127.0.0.1; the request
//     then names the page's host. Only loopback names and configured hosts
//     are served on the API listener.
//   - Origin: a page can also post to http://127.0.0.1:8081 directly (a
//     "simple" cross-origin request needs no preflight); browsers mark it
//     with Origin, SDKs outside a browser never send one.
//   - Path: the metered route is recognized by its exact spelling, so any
//     spelling an upstream might normalize to it (percent-encoding, case,
//     parameters, dot or empty segments, a trailing slash) is refused
//     rather than forwarded unmetered.
//   - Route: with an injected key, only the routes a Messages worker needs.

// errPermission is the API's error type for 403.
const errPermission = "permission_error"

// injectedKeyRoutes are served while the proxy injects its key: what a
// Messages API worker needs. GET /v1/models/{id} is matched in injectedRoute.
var injectedKeyRoutes = map[string]string{
	messagesPath:                http.MethodPost,
	"/v1/messages/count_tokens": http.MethodPost,
	modelsPath:                  http.MethodGet,
}

const modelsPath = "/v1/models"

// standardMethods are the methods forwarded. Methods are case-sensitive, so
// "post" is not POST to the proxy, but an upstream might treat it as POST.
var standardMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
}

// guard holds the normalized allowlists of Config.
type guard struct {
	hosts    map[string]bool
	origins  map[string]bool
	prefixes []string
}

// newGuard checks and normalizes the allowlists of cfg.
func newGuard(cfg Config) (guard, error) {
	g := guard{hosts: map[string]bool{}, origins: map[string]bool{}}
	for _, h := range cfg.AllowedHosts {
		norm, err := allowedHost(h)
		if err != nil {
			return g, err
		}
		g.hosts[norm] = true
	}
	for _, o := range cfg.AllowedOrigins {
		norm, err := allowedOrigin(o)
		if err != nil {
			return g, err
		}
		g.origins[norm] = true
	}
	for _, p := range cfg.AllowedPathPrefixes {
		if !validAPIPath(p) {
			return g, fmt.Errorf("allowed path prefix %q: want a clean path under /v1/ without a trailing slash, such as /v1/messages/batches", p)
		}
		g.prefixes = append(g.prefixes, p)
	}
	return g, nil
}

// allowedHost normalizes a configured host: a name or an IP address,
// without a port (every port is served).
func allowedHost(h string) (string, error) {
	norm := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	if ip := net.ParseIP(norm); ip != nil {
		return ip.String(), nil
	}
	if norm == "" || strings.ContainsAny(norm, ":/[]@ ") {
		return "", fmt.Errorf("allowed host %q: want a host name or IP address, without scheme or port", h)
	}
	return norm, nil
}

// allowedOrigin normalizes a configured origin: scheme://host[:port],
// exactly as a browser serializes it.
func allowedOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		u.Path != "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("allowed origin %q: want scheme://host[:port], such as https://tool.example", o)
	}
	return strings.ToLower(o), nil
}

// admitsClient checks who is asking: the Origin always, the Host when
// checkHost (the API listener). It returns the refusal, if any.
func (g guard) admitsClient(r *http.Request, checkHost bool) (answer, bool) {
	for _, o := range r.Header.Values("Origin") {
		if !g.origins[strings.ToLower(o)] {
			return answer{Status: http.StatusForbidden, Type: errPermission,
				Message: fmt.Sprintf("claudecap proxy: requests from origin %q are not served "+
					"(browser pages may not use this proxy; allow an origin with --allowed-origin)", o)}, false
		}
	}
	if checkHost && !g.servesHost(r.Host) {
		return answer{Status: http.StatusForbidden, Type: errPermission,
			Message: fmt.Sprintf("claudecap proxy: host %q is not served here; reach the proxy at localhost or allow the host with --allowed-host", r.Host)}, false
	}
	return answer{}, true
}

// servesHost reports whether a Host header names this proxy: a loopback
// name or address, or a configured host; any port.
func (g guard) servesHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if ip := net.ParseIP(host); ip != nil {
		return ip.IsLoopback() || g.hosts[ip.String()]
	}
	return host == "localhost" || g.hosts[host]
}

// admitsRoute checks the method and path. With an injected key, only the
// injected-key routes and the configured prefixes are served; without one,
// any plain /v1/ path (the worker's own key decides what it may do).
func (g guard) admitsRoute(r *http.Request, injected bool) (answer, bool) {
	notFound := answer{Status: http.StatusNotFound, Type: errNotFound}
	switch {
	case !standardMethods[r.Method]:
		notFound.Message = fmt.Sprintf("claudecap proxy: method %q is not served", r.Method)
	case !plainPath(r.URL):
		notFound.Message = "claudecap proxy: not a plain API path (no percent-encoding, ';', '\\', " +
			"case variants of /v1/messages, empty or dot segments, or trailing slash)"
	case injected && !g.injectedRoute(r.Method, r.URL.Path):
		notFound.Message = fmt.Sprintf("claudecap proxy: %s %s is not served with the injected API key "+
			"(allow a path prefix with --allow-path-prefix)", r.Method, r.URL.Path)
	default:
		return answer{}, true
	}
	return notFound, false
}

// injectedRoute reports whether a route is served with the injected key.
func (g guard) injectedRoute(method, path string) bool {
	if m, ok := injectedKeyRoutes[path]; ok && m == method {
		return true
	}
	if id, ok := strings.CutPrefix(path, modelsPath+"/"); ok && method == http.MethodGet && !strings.Contains(id, "/") {
		return true
	}
	for _, p := range g.prefixes {
		if path == p || strings.HasPrefix(path, p+"/") {
			return true
		}
	}
	return false
}

// errUnplainPath keeps an unchecked path from ever being sent upstream.
var errUnplainPath = errors.New("not a plain API path")

// plainPath reports whether a request's path is served as spelled: no
// percent-encoding anywhere (so the path decides, not how it was encoded),
// and a path validAPIPath accepts that is not a case variant of the metered
// route. The metering decision and the upstream URL both use this path.
func plainPath(u *url.URL) bool {
	return u.RawPath == "" && !strings.Contains(u.EscapedPath(), "%") &&
		validAPIPath(u.Path) && !caseVariantOf(u.Path, messagesPath)
}

// validAPIPath accepts paths under /v1/ whose segments are non-empty, not
// "." or "..", and only RFC 3986 unreserved characters (letters, digits,
// "-", ".", "_", "~"), which no server decodes or normalizes: so no
// control characters, ';', '\', '%', or trailing slash.
func validAPIPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v1/")
	if !ok {
		return false
	}
	for seg := range strings.SplitSeq(rest, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.IndexFunc(seg, notUnreserved) >= 0 {
			return false
		}
	}
	return true
}

func notUnreserved(c rune) bool {
	return (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '.' && c != '_' && c != '~'
}

// caseVariantOf reports whether p spells route, or a path below it, in
// another case: a case-insensitive upstream would serve it as route.
func caseVariantOf(p, route string) bool {
	n := len(route)
	if len(p) < n || (len(p) > n && p[n] != '/') {
		return false
	}
	return p[:n] != route && strings.EqualFold(p[:n], route)
}

// admits checks a request to the API listener: client, then route.
func (p *Proxy) admits(r *http.Request) (answer, bool) {
	if a, ok := p.cfg.guard.admitsClient(r, true); !ok {
		return a, false
	}
	return p.cfg.guard.admitsRoute(r, p.cfg.APIKey != "")
}
