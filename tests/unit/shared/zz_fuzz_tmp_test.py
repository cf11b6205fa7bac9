from hypothesis import given, settings, strategies as st, HealthCheck
import tests.unit.shared.test_imageref as t

@settings(max_examples=20000, suppress_health_check=list(HealthCheck), deadline=None)
@given(t._reference_text)
def test_grammar(text):
    t.test_grammar_generated_references_parse_and_round_trip.hypothesis.inner_test(text)

@settings(max_examples=20000, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet="abcAZ09._-/:@[]!sha256 \t"), st.text(alphabet="ab0.:/@[]-_")))
def test_text(text):
    t.test_arbitrary_text_raises_only_invalid_image_reference.hypothesis.inner_test(text)
