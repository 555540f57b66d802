package helm

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// manifests are the objects of one multi-document YAML stream, in stream order: the
// output of `helm template`, or a file of config/.
type manifests []*unstructured.Unstructured

// parseManifests splits a YAML stream into objects, dropping empty documents (helm
// emits one for every template whose condition is false).
func parseManifests(data []byte) (manifests, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs manifests
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("splitting YAML documents: %w", err)
		}
		var content map[string]any
		if err := yaml.Unmarshal(doc, &content); err != nil {
			return nil, fmt.Errorf("parsing YAML document %q: %w", firstLine(doc), err)
		}
		if len(content) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: content}
		if obj.GetKind() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("YAML document without kind or name: %q", firstLine(doc))
		}
		objs = append(objs, obj)
	}
}

// readManifests parses a YAML file of the repository.
func readManifests(file string) (manifests, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", file, err)
	}
	objs, err := parseManifests(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return objs, nil
}

// ofKind returns the objects of one kind.
func (m manifests) ofKind(kind string) manifests {
	var out manifests
	for _, obj := range m {
		if obj.GetKind() == kind {
			out = append(out, obj)
		}
	}
	return out
}

// find returns the object of that kind and name, or nil.
func (m manifests) find(kind, name string) *unstructured.Unstructured {
	for _, obj := range m {
		if obj.GetKind() == kind && obj.GetName() == name {
			return obj
		}
	}
	return nil
}

// only returns the single object of a kind, or an error saying how many there are.
func (m manifests) only(kind string) (*unstructured.Unstructured, error) {
	objs := m.ofKind(kind)
	if len(objs) != 1 {
		return nil, fmt.Errorf("want exactly one %s, rendered %d", kind, len(objs))
	}
	return objs[0], nil
}

// decode converts an object into its typed form, for example a *rbacv1.ClusterRole.
func decode[T any](obj *unstructured.Unstructured) (*T, error) {
	typed := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, typed); err != nil {
		return nil, fmt.Errorf("decoding %s %s: %w", obj.GetKind(), obj.GetName(), err)
	}
	return typed, nil
}

// decodeOnly decodes the single object of a kind.
func decodeOnly[T any](m manifests, kind string) (*T, error) {
	obj, err := m.only(kind)
	if err != nil {
		return nil, err
	}
	return decode[T](obj)
}

func firstLine(doc []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(doc), []byte("\n"))
	return string(line)
}
