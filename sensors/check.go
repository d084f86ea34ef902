package sensors

// Check reports what is wrong with the spec's driver settings, without
// touching the hardware or the files it names.
func (s Spec) Check() error {
	if _, err := s.driverName(); err != nil {
		return err
	}
	_, err := newDriver(&s)
	return err
}
