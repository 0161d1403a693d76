// Command testbox is the real-node tests' container: one static binary whose first argument
// picks a behaviour.
//
//	testbox serve PORT     answer every HTTP request with "hello from HOSTNAME"
//	testbox write PATH     create PATH and write to it; exit 1 with the error when it cannot
//	testbox crash MESSAGE  print MESSAGE and exit 3
//	testbox eat MIB        allocate and touch MIB mebibytes, then sleep
//	testbox get URL        print the body of an HTTP GET (https trusts the service account's
//	                       CA); exit 1 on any error
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

func main() {
	if len(os.Args) != 3 {
		fail("usage: testbox serve PORT | write PATH | crash MESSAGE | eat MIB | get URL")
	}
	arg := os.Args[2]
	switch os.Args[1] {
	case "serve":
		host, _ := os.Hostname()
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "hello from %s\n", host)
		})
		fail(http.ListenAndServe(":"+arg, nil).Error())
	case "write":
		if err := os.WriteFile(arg, []byte("written\n"), 0o644); err != nil {
			fail(err.Error())
		}
		fmt.Println("wrote", arg)
	case "crash":
		fmt.Println(arg)
		os.Exit(3)
	case "eat":
		mib, err := strconv.Atoi(arg)
		if err != nil {
			fail(err.Error())
		}
		chunks := make([][]byte, 0, mib)
		for i := 0; i < mib; i++ {
			chunk := make([]byte, 1<<20)
			for j := range chunk {
				chunk[j] = byte(j)
			}
			chunks = append(chunks, chunk)
		}
		fmt.Println("holding", len(chunks), "MiB")
		time.Sleep(time.Hour)
	case "get":
		client := http.Client{Timeout: 5 * time.Second}
		if ca, err := os.ReadFile(serviceAccountCA); err == nil {
			roots := x509.NewCertPool()
			roots.AppendCertsFromPEM(ca)
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}
		}
		response, err := client.Get(arg)
		if err != nil {
			fail(err.Error())
		}
		body, _ := io.ReadAll(response.Body)
		fmt.Print(string(body))
		if response.StatusCode != http.StatusOK {
			fail(response.Status)
		}
	default:
		fail("unknown behaviour " + os.Args[1])
	}
}

const serviceAccountCA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}
