module github.com/valetauth/valet/services/edge

go 1.26
