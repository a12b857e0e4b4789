module github.com/valetauth/valet/pkg/edge

go 1.26
