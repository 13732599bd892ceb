// Command kstatus prints what kstatus (sigs.k8s.io/cli-utils/pkg/kstatus/status, the library Flux, kpt and
// cli-utils wait with) computes for Kubernetes objects: the suite checks Bosun's conditions against the
// library itself, never against a port of its rules.
//
// Input on stdin: a JSON array of objects as the API server returns them. Output on stdout: a JSON array
// with one {"status", "message", "reason"} per object, in order; reason is that of the condition kstatus
// derived (e.g. LatestGenerationNotObserved), empty when it derived none.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Reason  string `json:"reason"`
}

func main() {
	var objects []json.RawMessage
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: stdin must be one JSON array of Kubernetes objects: %v\n", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(objects))
	for i, raw := range objects {
		// UnmarshalJSON keeps integers as int64, which kstatus' generation checks require.
		object := &unstructured.Unstructured{}
		if err := object.UnmarshalJSON(raw); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d is not a Kubernetes object: %v\n", i, err)
			os.Exit(2)
		}
		computed, err := status.Compute(object)
		if err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: object %d (%s %s): %v\n", i, object.GetKind(), object.GetName(), err)
			os.Exit(1)
		}
		r := result{Status: computed.Status.String(), Message: computed.Message}
		if len(computed.Conditions) > 0 {
			r.Reason = computed.Conditions[0].Reason
		}
		results = append(results, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(results); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: writing the results: %v\n", err)
		os.Exit(1)
	}
}
