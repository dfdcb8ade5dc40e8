package main

// envPowerCut names the boot ID of a node whose data dir lives on a simulated disk
// (powercut.go).
const envPowerCut = "DURO_POWERCUT"
