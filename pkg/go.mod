module github.com/valetauth/valet/pkg

go 1.26
