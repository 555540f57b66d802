package queue

import (
	"fmt"
	"strconv"
)

// groupInfo is what a poll needs from one entry of XINFO GROUPS.
type groupInfo struct {
	name string
	// entriesRead counts entries delivered to the group (Redis 7+); unknown
	// when Redis replies nil or omits the field.
	entriesRead      int64
	entriesReadKnown bool
	// lag is the number of entries not yet delivered to the group (Redis 7+);
	// unknown when nil or omitted.
	lag      int64
	lagKnown bool
}

// parseGroups reads an XINFO GROUPS reply as go-redis returns it for a
// generic command: an array of maps under RESP3, an array of flat
// field/value arrays under RESP2. Fields are read by name and unknown ones
// skipped, so replies from Redis 6 (no entries-read or lag) and from later
// versions (more fields) both parse.
func parseGroups(reply any) ([]groupInfo, error) {
	entries, ok := reply.([]any)
	if !ok {
		return nil, fmt.Errorf("XINFO GROUPS replied %T, not an array", reply)
	}
	groups := make([]groupInfo, 0, len(entries))
	for i, entry := range entries {
		fields, err := fieldMap(entry)
		if err != nil {
			return nil, fmt.Errorf("XINFO GROUPS entry %d: %w", i, err)
		}
		g, err := groupFromFields(fields)
		if err != nil {
			return nil, fmt.Errorf("XINFO GROUPS entry %d: %w", i, err)
		}
		groups = append(groups, g)
	}
	return groups, nil
}

func groupFromFields(fields map[string]any) (groupInfo, error) {
	var g groupInfo
	name, ok := fields["name"].(string)
	if !ok {
		return g, fmt.Errorf("group name is %T, not a string", fields["name"])
	}
	g.name = name
	var err error
	if g.entriesRead, g.entriesReadKnown, err = optionalCount(fields["entries-read"]); err != nil {
		return g, fmt.Errorf("group %q entries-read: %w", name, err)
	}
	if g.lag, g.lagKnown, err = optionalCount(fields["lag"]); err != nil {
		return g, fmt.Errorf("group %q lag: %w", name, err)
	}
	return g, nil
}

// fieldMap turns either reply shape of one group into a map by field name.
func fieldMap(entry any) (map[string]any, error) {
	switch e := entry.(type) {
	case map[any]any:
		m := make(map[string]any, len(e))
		for k, v := range e {
			name, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("field name is %T, not a string", k)
			}
			m[name] = v
		}
		return m, nil
	case map[string]any:
		return e, nil
	case []any:
		if len(e)%2 != 0 {
			return nil, fmt.Errorf("odd number (%d) of field/value items", len(e))
		}
		m := make(map[string]any, len(e)/2)
		for i := 0; i < len(e); i += 2 {
			name, ok := e[i].(string)
			if !ok {
				return nil, fmt.Errorf("field name is %T, not a string", e[i])
			}
			m[name] = e[i+1]
		}
		return m, nil
	default:
		return nil, fmt.Errorf("group is %T, not a map or an array", entry)
	}
}

// optionalCount reads a non-negative integer that Redis may leave nil (or
// that an older Redis does not send at all).
func optionalCount(v any) (n int64, known bool, err error) {
	switch x := v.(type) {
	case nil:
		return 0, false, nil
	case int64:
		n = x
	case string:
		if n, err = strconv.ParseInt(x, 10, 64); err != nil {
			return 0, false, fmt.Errorf("%q is not an integer", x)
		}
	default:
		return 0, false, fmt.Errorf("%T is not an integer", v)
	}
	if n < 0 {
		return 0, false, fmt.Errorf("negative count %d", n)
	}
	return n, true, nil
}

// findGroup returns the named group, if the reply lists it.
func findGroup(groups []groupInfo, name string) (groupInfo, bool) {
	for _, g := range groups {
		if g.name == name {
			return g, true
		}
	}
	return groupInfo{}, false
}
