// Package wirecheck holds no code: its test checks that every wire format with one named
// field per limit dimension (CRD fields, the limiter's JSON in Redis, the mock API's config
// and statistics, the load-test report) names exactly the dimensions of pkg/dimension's
// table, so that a dimension added to the table and missed by a wire format fails a test.
// The checks live here, not in api/v1alpha1, because the API package imports nothing of ours.
package wirecheck
