//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the RBAC check reads.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	// RequestReceivedTimestamp places a call in a phase (a watch completes only when it ends).
	RequestReceivedTimestamp time.Time `json:"requestReceivedTimestamp"`
	RequestURI               string    `json:"requestURI"`
}

// permission is one verb on one resource (with its subresource) of one API group, in one
// namespace ("" for cluster-scoped requests and for rules of a ClusterRole).
type permission struct {
	group, resource, verb, namespace string
}

func (p permission) String() string {
	group := p.group
	if group == "" {
		group = "core"
	}
	where := "cluster-wide"
	if p.namespace != "" {
		where = "in " + p.namespace
	}
	return fmt.Sprintf("%s %s/%s %s", p.verb, group, p.resource, where)
}

// call is a request of the operator as the audit log recorded it.
type call struct {
	permission
	code int
	at   time.Time
	uri  string
}

// operatorCalls reads every completed resource request of user from the audit log.
func operatorCalls(t *testing.T, path, user string) []call {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("reading the audit log: %v", err)
	}
	defer func() { _ = f.Close() }()
	var calls []call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		var ev auditEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("an audit log line is not an event: %v", err)
		}
		if ev.User.Username != user || ev.Stage != "ResponseComplete" || ev.ObjectRef == nil {
			continue // another user, or a non-resource request (discovery, allowed to every user)
		}
		resource := ev.ObjectRef.Resource
		if ev.ObjectRef.Subresource != "" {
			resource += "/" + ev.ObjectRef.Subresource
		}
		calls = append(calls, call{
			permission: permission{group: ev.ObjectRef.APIGroup, resource: resource, verb: ev.Verb, namespace: ev.ObjectRef.Namespace},
			code:       ev.ResponseStatus.Code, at: ev.RequestReceivedTimestamp, uri: ev.RequestURI,
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return calls
}

// grant is one verb of one rule of a Role or ClusterRole bound to the ServiceAccount.
type grant struct {
	role string // "ClusterRole/x" or "Role/ns/x"
	permission
}

// grantsOf lists every verb granted to a ServiceAccount by the RoleBindings and
// ClusterRoleBindings that name it, one entry per group, resource and verb.
func grantsOf(ctx context.Context, t *testing.T, kube client.Client, namespace, name string) []grant {
	t.Helper()
	subject := func(subjects []rbacv1.Subject) bool {
		return slices.ContainsFunc(subjects, func(s rbacv1.Subject) bool {
			return s.Kind == rbacv1.ServiceAccountKind && s.Name == name && s.Namespace == namespace
		})
	}
	expand := func(role, ns string, rules []rbacv1.PolicyRule) []grant {
		var out []grant
		for _, r := range rules {
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, v := range r.Verbs {
						out = append(out, grant{role: role, permission: permission{group: g, resource: res, verb: v, namespace: ns}})
					}
				}
			}
		}
		return out
	}
	clusterRole := func(roleName string) []rbacv1.PolicyRule {
		cr := &rbacv1.ClusterRole{}
		if err := kube.Get(ctx, client.ObjectKey{Name: roleName}, cr); err != nil {
			t.Fatalf("a binding names ClusterRole %s: %v", roleName, err)
		}
		return cr.Rules
	}
	var grants []grant
	var crbs rbacv1.ClusterRoleBindingList
	if err := kube.List(ctx, &crbs); err != nil {
		t.Fatal(err)
	}
	for _, b := range crbs.Items {
		if !subject(b.Subjects) {
			continue
		}
		grants = append(grants, expand("ClusterRole/"+b.RoleRef.Name, "", clusterRole(b.RoleRef.Name))...)
	}
	var rbs rbacv1.RoleBindingList
	if err := kube.List(ctx, &rbs); err != nil {
		t.Fatal(err)
	}
	for _, b := range rbs.Items {
		if !subject(b.Subjects) {
			continue
		}
		var rules []rbacv1.PolicyRule
		role := "Role/" + b.Namespace + "/" + b.RoleRef.Name
		if b.RoleRef.Kind == "ClusterRole" {
			rules, role = clusterRole(b.RoleRef.Name), "ClusterRole/"+b.RoleRef.Name+" in "+b.Namespace
		} else {
			r := &rbacv1.Role{}
			if err := kube.Get(ctx, client.ObjectKey{Namespace: b.Namespace, Name: b.RoleRef.Name}, r); err != nil {
				t.Fatal(err)
			}
			rules = r.Rules
		}
		grants = append(grants, expand(role, b.Namespace, rules)...)
	}
	return grants
}

// covers says whether a grant allows a call, as the RBAC authorizer matches ("*" is any
// group or verb; "*/scale" is the scale subresource of any resource; a namespaced grant
// only in its namespace).
func (g grant) covers(c call) bool {
	if g.namespace != "" && g.namespace != c.namespace {
		return false
	}
	match := func(rule, got string) bool { return rule == "*" || rule == got }
	resource := g.resource == "*" || g.resource == c.resource ||
		(strings.HasPrefix(g.resource, "*/") && strings.HasSuffix(c.resource, g.resource[1:]))
	return match(g.group, c.group) && match(g.verb, c.verb) && resource
}

// rbacReport is what the audit log says about the operator's permissions: the calls the
// API server refused, and for every granted verb the first phase that used it (none: never).
type rbacReport struct {
	refused []call
	used    map[grant]string // grant -> first phase that used it
	unused  []grant
	// ungranted lists calls no grant covers that still succeeded (granted elsewhere, such
	// as system:basic-user): allowed, but listed.
	ungranted []call
}

// checkRBAC reads the audit log for the operator's calls and matches them with its grants.
func checkRBAC(t *testing.T, calls []call, grants []grant, phaseAt func(time.Time) string) rbacReport {
	t.Helper()
	rep := rbacReport{used: map[grant]string{}}
	for _, c := range calls {
		if c.code == 403 {
			rep.refused = append(rep.refused, c)
			continue
		}
		matched := false
		for _, g := range grants {
			if g.covers(c) {
				matched = true
				if _, seen := rep.used[g]; !seen {
					rep.used[g] = phaseAt(c.at)
				}
			}
		}
		if !matched {
			rep.ungranted = append(rep.ungranted, c)
		}
	}
	for _, g := range grants {
		if _, ok := rep.used[g]; !ok {
			rep.unused = append(rep.unused, g)
		}
	}
	return rep
}

// table prints the report: every grant with the phase that first needed it.
func (rep rbacReport) table() string {
	var b strings.Builder
	rows := make([]string, 0, len(rep.used)+len(rep.unused))
	for g, phase := range rep.used {
		rows = append(rows, fmt.Sprintf("| %s | %s | %s |", g.role, g.permission, phase))
	}
	for _, g := range rep.unused {
		why := idleReason(g)
		if why == "" {
			why = "no reason known: remove it"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | never used: %s |", g.role, g.permission, why))
	}
	sort.Strings(rows)
	b.WriteString("| role | granted | first needed by |\n|---|---|---|\n")
	b.WriteString(strings.Join(rows, "\n"))
	return b.String()
}

// idleReason says why the chart grants a verb the scenario never used, or "" when nothing
// explains it (a write verb without a reason fails the test: least privilege).
func idleReason(g grant) string {
	switch {
	case g.resource == "secrets":
		return "only with a passwordSecretRef or credentialsSecretRef (queue, limiter, an organization's limiter)"
	case g.verb == "list":
		return "informers stream their first list as a watch (WatchList); servers without it need list"
	case g.verb == "get" && g.group != "*":
		return "reads go through the informers' cache; get is what a cache miss or kubectl-style read needs"
	case g.resource == "*/scale" && g.verb == "get":
		return "Deployments' and StatefulSets' /scale is read from the cache; other kinds (Argo Rollouts, custom resources) are read live"
	case g.resource == "claudeorganizations/status":
		return "this scenario has no ClaudeOrganization (controllers/organization_test.go covers it)"
	case g.resource == "events" && g.verb == "patch":
		return "event recorders patch a repeated event (a series) instead of creating another"
	}
	return ""
}

// writeVerb is a verb that changes something.
func writeVerb(verb string) bool {
	switch verb {
	case "create", "update", "patch", "delete", "deletecollection", "*":
		return true
	}
	return false
}
