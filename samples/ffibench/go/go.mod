module seam.samples/ffibench

go 1.19
