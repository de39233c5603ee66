module github.com/dream-api/dream-api/sdk/go

go 1.24
