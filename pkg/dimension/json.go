package dimension

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Field names one JSON member per dimension in an object of per-dimension values.
type Field func(Info) string

// LimitFieldOf keys a dimension by its LimitField: "outputTokensPerMinute".
func LimitFieldOf(i Info) string { return i.LimitField }

// ShareFieldOf keys a dimension by its Name in lowerCamelCase, the member of a share or a
// utilization figure: "outputTokens".
func ShareFieldOf(i Info) string { return strings.ToLower(i.Name[:1]) + i.Name[1:] }

// MarshalObject writes values as one JSON object with a member per dimension, named by
// field, in table order: the layout a struct with one field per dimension would have.
// omitZero leaves zero values out, as the omitempty option would.
func MarshalObject[A ~[Count]T, T int64 | float64](values A, field Field, omitZero bool) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for _, d := range All() {
		if omitZero && values[d] == 0 {
			continue
		}
		v, err := json.Marshal(values[d])
		if err != nil {
			return nil, fmt.Errorf("encoding %s: %w", field(table[d]), err)
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:", field(table[d]))
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalObject reads an object MarshalObject wrote into values: a member left out (or
// null) keeps its value, and a member that names no dimension is an error, as it is for a
// strictly decoded struct. extra, when not nil, takes the members that name no dimension
// instead: the other fields of a struct that holds the values inline.
func UnmarshalObject[A ~[Count]T, T int64 | float64](data []byte, values *A, field Field, extra map[string]json.RawMessage) error {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return err
	}
	for name, raw := range members {
		d, ok := dimensionOfField(name, field)
		if !ok {
			if extra == nil {
				return fmt.Errorf("json: unknown field %q", name)
			}
			extra[name] = raw
			continue
		}
		if err := json.Unmarshal(raw, &(*values)[d]); err != nil {
			return fmt.Errorf("field %s: %w", name, err)
		}
	}
	return nil
}

func dimensionOfField(name string, field Field) (Dimension, bool) {
	for _, d := range All() {
		if field(table[d]) == name {
			return d, true
		}
	}
	return 0, false
}
