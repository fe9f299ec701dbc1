module seam.samples/gohttp

go 1.19
