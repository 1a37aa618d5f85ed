// Command baton-image assembles Baton's container image from a static
// baton binary, without a registry or a container runtime, and writes it
// as an archive for `podman load` and as an OCI layout. `make image` runs
// it.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/batonflow/baton/deploy/image"
)

func main() {
	var opts image.Options
	var archive, layoutDir, ref, epoch string
	flag.StringVar(&opts.Binary, "binary", "", "static linux baton binary (CGO_ENABLED=0 GOOS=linux)")
	flag.StringVar(&opts.CAFile, "ca-certs", image.DefaultCAFile, "PEM bundle of the CAs the server trusts")
	flag.StringVar(&opts.Version, "version", "", "version label of the image")
	flag.StringVar(&opts.Revision, "revision", "", "source revision label of the image")
	flag.StringVar(&ref, "tag", "baton:latest", "name the archive and the layout give the image")
	flag.StringVar(&archive, "archive", "", "write an image archive here (podman load -i / docker load -i)")
	flag.StringVar(&layoutDir, "oci-layout", "", "write an OCI image layout into this directory (skopeo copy oci:DIR, crane push DIR)")
	flag.StringVar(&epoch, "source-date-epoch", os.Getenv("SOURCE_DATE_EPOCH"), "creation time as Unix seconds (default 0: reproducible)")
	flag.Parse()
	if err := run(opts, archive, layoutDir, ref, epoch); err != nil {
		fmt.Fprintln(os.Stderr, "baton-image:", err)
		os.Exit(1)
	}
}

func run(opts image.Options, archive, layoutDir, ref, epoch string) error {
	if opts.Binary == "" || (archive == "" && layoutDir == "") {
		return fmt.Errorf("give --binary and --archive or --oci-layout")
	}
	if epoch != "" {
		var secs int64
		if _, err := fmt.Sscan(epoch, &secs); err != nil {
			return fmt.Errorf("--source-date-epoch %q: not Unix seconds", epoch)
		}
		opts.Created = time.Unix(secs, 0)
	}
	img, err := image.Build(opts)
	if err != nil {
		return err
	}
	if archive != "" {
		if err := image.WriteArchive(archive, ref, img); err != nil {
			return err
		}
	}
	if layoutDir != "" {
		if err := image.WriteLayout(layoutDir, ref, img); err != nil {
			return err
		}
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ref, digest)
	return nil
}
