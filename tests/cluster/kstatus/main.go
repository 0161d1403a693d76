// Command kstatus prints the status that Flux and kpt compute for each object read from stdin
// (a JSON object or a List), using sigs.k8s.io/cli-utils' kstatus library.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err)
	}
	// UnmarshalJSON keeps integers as int64, which the kstatus accessors expect.
	var head struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		fail(err)
	}
	var items []unstructured.Unstructured
	if strings.HasSuffix(head.Kind, "List") {
		list := &unstructured.UnstructuredList{}
		if err := list.UnmarshalJSON(data); err != nil {
			fail(err)
		}
		items = list.Items
	} else {
		obj := unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(data); err != nil {
			fail(err)
		}
		items = []unstructured.Unstructured{obj}
	}
	results := []result{}
	for i := range items {
		res, err := status.Compute(&items[i])
		if err != nil {
			fail(err)
		}
		results = append(results, result{items[i].GetName(), res.Status.String(), res.Message})
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "kstatus:", err)
	os.Exit(1)
}
