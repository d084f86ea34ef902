package sensors

import (
	"fmt"
	"strings"
)

// piHeader maps the positions of the Raspberry Pi's 40-pin header (the
// same on every model since the B+, Zero included) to the BCM GPIO line
// names the kernel gives the lines, so a config can name a pin by where
// the wire goes. periph.io's rpi package knows this table too, but only
// through the bcm283x driver, which maps /dev/gpiomem and does not work
// on the Pi 5; the GPIO character device works on all of them.
var piHeader = map[string]string{
	"P1_3": "GPIO2", "P1_5": "GPIO3", "P1_7": "GPIO4", "P1_8": "GPIO14",
	"P1_10": "GPIO15", "P1_11": "GPIO17", "P1_12": "GPIO18", "P1_13": "GPIO27",
	"P1_15": "GPIO22", "P1_16": "GPIO23", "P1_18": "GPIO24", "P1_19": "GPIO10",
	"P1_21": "GPIO9", "P1_22": "GPIO25", "P1_23": "GPIO11", "P1_24": "GPIO8",
	"P1_26": "GPIO7", "P1_27": "GPIO0", "P1_28": "GPIO1", "P1_29": "GPIO5",
	"P1_31": "GPIO6", "P1_32": "GPIO12", "P1_33": "GPIO13", "P1_35": "GPIO19",
	"P1_36": "GPIO16", "P1_37": "GPIO26", "P1_38": "GPIO20", "P1_40": "GPIO21",
}

// LineName is the kernel's GPIO line name for a configured pin: a header
// position as the line wired to it, any other name as it is. A header
// position without a GPIO line (3.3V, 5V, ground) is an error, which
// config validation reports rather than a missing line at run time.
func LineName(pin string) (string, error) {
	if n, ok := piHeader[pin]; ok {
		return n, nil
	}
	if strings.HasPrefix(pin, "P1_") {
		return "", fmt.Errorf("header pin %s is not a GPIO line (power or ground, or not a pin of the 40-pin header)", pin)
	}
	return pin, nil
}
