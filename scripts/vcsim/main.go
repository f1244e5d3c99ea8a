// vcsim: VMware's vCenter simulator (govmomi's simulator package, from
// Debian's golang-github-vmware-govmomi-dev), for voe's vSphere driver
// tests. One datacenter, one cluster of ESX hosts, plain HTTP on the
// address given; prints its URL, serves until stdin closes.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/url"
	"os"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("l", "127.0.0.1:0", "address to listen on")
	hosts := flag.Int("hosts", 2, "ESX hosts in the cluster")
	username := flag.String("username", "voe", "login")
	password := flag.String("password", "voe-lab", "password")
	flag.Parse()

	model := simulator.VPX()
	model.Host = 0
	model.Cluster = 1
	model.ClusterHost = *hosts
	model.Machine = 0
	if err := model.Create(); err != nil {
		log.Fatal(err)
	}
	defer model.Remove()
	model.Service.Listen = &url.URL{Host: *listen, User: url.UserPassword(*username, *password)}
	server := model.Service.NewServer()
	defer server.Close()
	fmt.Println(server.URL.String())
	_, _ = io.Copy(io.Discard, os.Stdin)
}
