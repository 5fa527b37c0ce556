# Included by CTest after the GoogleTest discovery of megaloc_lamar_colmap_test. megaloc_add_test
# passes LABELS as one property value (only the first label would survive), so the full label list
# of the discovered tests is set here.
foreach(test_name IN LISTS megaloc_lamar_colmap_test_TESTS)
  set_tests_properties("${test_name}" PROPERTIES LABELS "lamar;colmap;slow")
endforeach()
