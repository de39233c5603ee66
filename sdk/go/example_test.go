package dream_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	dream "github.com/dream-api/dream-api/sdk/go"
)

// The seed's three lines: a customer, a tracked call, a Checkout.
func Example() {
	ctx := context.Background()
	client := dream.New(dream.Options{}) // DREAM_SECRET_KEY, DREAM_API_URL
	email := "ada@example.com"

	customer, err := client.Customers.Create(ctx, dream.CustomerParams{Email: email, Plan: "free"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := client.Track(ctx, customer.ID); err != nil { // Enforces limits
		log.Fatal(err)
	}
	checkout, err := client.Checkout(ctx, customer.ID, "pro", nil) // Their Stripe
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("send the customer to", checkout.URL)
}

// At the limit, Track returns a *TierLimitError and counts nothing.
func ExampleClient_Track() {
	ctx := context.Background()
	client := dream.New(dream.Options{})
	_, err := client.TrackWith(ctx, dream.TrackParams{CustomerID: "cus_123", Feature: "exports", Quantity: 5})
	var limit *dream.TierLimitError
	switch {
	case errors.As(err, &limit):
		fmt.Printf("upgrade: %d of %d %s used\n", limit.Usage.Count, limit.Usage.Limit, limit.Usage.Feature)
	case err != nil:
		log.Fatal(err)
	}
}

// List walks every customer, fetching pages as it goes.
func ExampleCustomersService_List() {
	ctx := context.Background()
	client := dream.New(dream.Options{})
	for c, err := range client.Customers.List(ctx, dream.ListParams{}) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.ID, c.Plan)
	}
}
