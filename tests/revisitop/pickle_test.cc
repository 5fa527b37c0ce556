#include "megaloc/util/pickle.h"

#include <chrono>
#include <cmath>

#include <gtest/gtest.h>

#include "megaloc/eval/revisitop/revisitop_gnd.h"
#include "megaloc/util/file_utils.h"
#include "megaloc/util/logging.h"
#include "tests/common/testing.h"
#include "tests/revisitop/pickle_writer.h"

namespace megaloc {
namespace {

using Type = PickleValue::Type;

std::string FromHex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

// Expects a FormatError whose message contains every fragment.
void ExpectFormatError(const std::string& bytes, const std::vector<std::string>& fragments) {
  try {
    ParsePickle(bytes, "test.pkl");
    FAIL() << "no error";
  } catch (const FormatError& e) {
    for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
        << "message '" << e.what() << "' lacks '" << f << "'";
  }
}

// The same object pickled by CPython 3.11 `pickle.dumps(obj, protocol=p)` for p = 0..5:
// {'imlist': ['a', 'b', 'café'], 'qimlist': ['q\n1'],
//  'gnd': [{'bbx': [1.5, 2, 3.25, 4], 'easy': [0], 'hard': [1, 2], 'junk': []}]}
const char* kGndByProtocol[6] = {
    "286470300a56696d6c6973740a70310a286c70320a56610a70330a6156620a70340a6156636166e90a70350a6173"
    "5671696d6c6973740a70360a286c70370a56715c7530303061310a70380a617356676e640a70390a286c7031300a"
    "28647031310a566262780a7031320a286c7031330a46312e350a6149320a6146332e32350a6149340a6173566561"
    "73790a7031340a286c7031350a49300a617356686172640a7031360a286c7031370a49310a6149320a6173566a75"
    "6e6b0a7031380a286c7031390a7361732e",
    "7d7100285806000000696d6c69737471015d710228580100000061710358010000006271045805000000636166c3"
    "a9710565580700000071696d6c69737471065d71075803000000710a317108615803000000676e6471095d710a7d"
    "710b285803000000626278710c5d710d28473ff80000000000004b0247400a0000000000004b0465580400000065"
    "617379710e5d710f4b006158040000006861726471105d7111284b014b026558040000006a756e6b71125d711375"
    "61752e",
    "80027d7100285806000000696d6c69737471015d710228580100000061710358010000006271045805000000636166"
    "c3a9710565580700000071696d6c69737471065d71075803000000710a317108615803000000676e6471095d710a"
    "7d710b285803000000626278710c5d710d28473ff80000000000004b0247400a0000000000004b04655804000000"
    "65617379710e5d710f4b006158040000006861726471105d7111284b014b026558040000006a756e6b71125d7113"
    "7561752e",
    "80037d7100285806000000696d6c69737471015d710228580100000061710358010000006271045805000000636166"
    "c3a9710565580700000071696d6c69737471065d71075803000000710a317108615803000000676e6471095d710a"
    "7d710b285803000000626278710c5d710d28473ff80000000000004b0247400a0000000000004b04655804000000"
    "65617379710e5d710f4b006158040000006861726471105d7111284b014b026558040000006a756e6b71125d7113"
    "7561752e",
    "80049586000000000000007d94288c06696d6c697374945d94288c0161948c0162948c05636166c3a994658c0771"
    "696d6c697374945d948c03710a3194618c03676e64945d947d94288c03626278945d9428473ff8000000000000"
    "4b0247400a0000000000004b04658c0465617379945d944b00618c0468617264945d94284b014b02658c046a756e"
    "6b945d947561752e",
    "80059586000000000000007d94288c06696d6c697374945d94288c0161948c0162948c05636166c3a994658c0771"
    "696d6c697374945d948c03710a3194618c03676e64945d947d94288c03626278945d9428473ff8000000000000"
    "4b0247400a0000000000004b04658c0465617379945d944b00618c0468617264945d94284b014b02658c046a756e"
    "6b945d947561752e",
};

TEST(Pickle, EveryProtocolGivesTheSameGroundTruth) {
  for (int p = 0; p < 6; ++p) {
    SCOPED_TRACE("protocol " + std::to_string(p));
    const PickleValuePtr root = ParsePickle(FromHex(kGndByProtocol[p]), "gnd.pkl");
    const RevisitopGroundTruth gt = RevisitopGroundTruthFromPickle(*root, "gnd.pkl");
    ASSERT_EQ(gt.imlist, (std::vector<std::string>{"a", "b", "caf\xc3\xa9"}));
    ASSERT_EQ(gt.qimlist, (std::vector<std::string>{"q\n1"}));
    ASSERT_EQ(gt.gnd.size(), 1u);
    EXPECT_TRUE(gt.gnd[0].has_bbx);
    EXPECT_EQ(gt.gnd[0].bbx[0], 1.5);
    EXPECT_EQ(gt.gnd[0].bbx[1], 2.0);
    EXPECT_EQ(gt.gnd[0].bbx[2], 3.25);
    EXPECT_EQ(gt.gnd[0].bbx[3], 4.0);
    EXPECT_EQ(gt.gnd[0].easy, (std::vector<int64_t>{0}));
    EXPECT_EQ(gt.gnd[0].hard, (std::vector<int64_t>{1, 2}));
    EXPECT_TRUE(gt.gnd[0].junk.empty());
  }
}

// pickle.dumps(obj, protocol=p) of
// {'none': None, 't': True, 'f': False, 'neg': -5, 'big': 2**40, 'neg_big': -2**40,
//  'max': 2**63-1, 'min': -2**63, 'tuple': (1, 'x'), 'set': {3}, 'bytes': b'\x00\xff',
//  'nested': [[1], [2, [3]]], 'shared': [s, s] with s = [7], 'float': -0.1, 'e': (),
//  'fs': frozenset([4])}
const char* kGenericByProtocol[6] = {
    "286470300a566e6f6e650a70310a4e7356740a70320a4930310a7356660a70330a4930300a73566e65670a70340a"
    "492d350a73566269670a70350a4c313039393531313632373737364c0a73566e65675f6269670a70360a4c2d3130"
    "39393531313632373737364c0a73566d61780a70370a4c393232333337323033363835343737353830374c0a7356"
    "6d696e0a70380a4c2d393232333337323033363835343737353830384c0a73567475706c650a70390a2849310a56"
    "780a7031300a747031310a73567365740a7031320a635f5f6275696c74696e5f5f0a7365740a7031330a28286c70"
    "31340a49330a61747031350a527031360a735662797465730a7031370a635f636f646563730a656e636f64650a70"
    "31380a28565c7530303030ff0a7031390a566c6174696e310a7032300a747032310a527032320a73566e65737465"
    "640a7032330a286c7032340a286c7032350a49310a6161286c7032360a49320a61286c7032370a49330a61616173"
    "567368617265640a7032380a286c7032390a286c7033300a49370a61616733300a617356666c6f61740a7033310a"
    "462d302e310a7356650a7033320a2874735666730a7033330a635f5f6275696c74696e5f5f0a66726f7a656e7365"
    "740a7033340a28286c7033350a49340a61747033360a527033370a732e",
    "7d71002858040000006e6f6e6571014e58010000007471024930310a58010000006671034930300a58030000006e"
    "656771044afbffffff580300000062696771054c313039393531313632373737364c0a58070000006e65675f6269"
    "6771064c2d313039393531313632373737364c0a58030000006d617871074c393232333337323033363835343737"
    "353830374c0a58030000006d696e71084c2d393232333337323033363835343737353830384c0a58050000007475"
    "706c657109284b01580100000078710a74710b5803000000736574710c635f5f6275696c74696e5f5f0a7365740a"
    "710d285d710e4b036174710f527110580500000062797465737111635f636f646563730a656e636f64650a711228"
    "580300000000c3bf711358060000006c6174696e31711474711552711658060000006e657374656471175d711828"
    "5d71194b01615d711a284b025d711b4b036165655806000000736861726564711c5d711d285d711e4b0761681e65"
    "5805000000666c6f6174711f47bfb999999999999a580100000065712029580200000066737121635f5f6275696c"
    "74696e5f5f0a66726f7a656e7365740a7122285d71234b0461747124527125752e",
    "80027d71002858040000006e6f6e6571014e58010000007471028858010000006671038958030000006e65677104"
    "4afbffffff580300000062696771058a0600000000000158070000006e65675f62696771068a060000000000ff58"
    "030000006d617871078a08ffffffffffffff7f58030000006d696e71088a08000000000000008058050000007475"
    "706c6571094b01580100000078710a86710b5803000000736574710c635f5f6275696c74696e5f5f0a7365740a71"
    "0d5d710e4b036185710f527110580500000062797465737111635f636f646563730a656e636f64650a7112580300"
    "000000c3bf711358060000006c6174696e31711486711552711658060000006e657374656471175d7118285d7119"
    "4b01615d711a284b025d711b4b036165655806000000736861726564711c5d711d285d711e4b0761681e65580500"
    "0000666c6f6174711f47bfb999999999999a580100000065712029580200000066737121635f5f6275696c74696e"
    "5f5f0a66726f7a656e7365740a71225d71234b0461857124527125752e",
    "80037d71002858040000006e6f6e6571014e58010000007471028858010000006671038958030000006e65677104"
    "4afbffffff580300000062696771058a0600000000000158070000006e65675f62696771068a060000000000ff58"
    "030000006d617871078a08ffffffffffffff7f58030000006d696e71088a08000000000000008058050000007475"
    "706c6571094b01580100000078710a86710b5803000000736574710c636275696c74696e730a7365740a710d5d71"
    "0e4b036185710f527110580500000062797465737111430200ff711258060000006e657374656471135d7114285d"
    "71154b01615d7116284b025d71174b03616565580600000073686172656471185d7119285d711a4b0761681a6558"
    "05000000666c6f6174711b47bfb999999999999a580100000065711c2958020000006673711d636275696c74696e"
    "730a66726f7a656e7365740a711e5d711f4b0461857120527121752e",
    "800495dc000000000000007d94288c046e6f6e65944e8c017494888c016694898c036e6567944afbffffff8c0362"
    "6967948a060000000000018c076e65675f626967948a060000000000ff8c036d6178948a08ffffffffffffff7f8c"
    "036d696e948a0800000000000000808c057475706c65944b018c01789486948c03736574948f94284b03908c0562"
    "7974657394430200ff948c066e6573746564945d94285d944b01615d94284b025d944b036165658c067368617265"
    "64945d94285d944b07616817658c05666c6f61749447bfb999999999999a8c016594298c02667394284b04919475"
    "2e",
    "800595dc000000000000007d94288c046e6f6e65944e8c017494888c016694898c036e6567944afbffffff8c0362"
    "6967948a060000000000018c076e65675f626967948a060000000000ff8c036d6178948a08ffffffffffffff7f8c"
    "036d696e948a0800000000000000808c057475706c65944b018c01789486948c03736574948f94284b03908c0562"
    "7974657394430200ff948c066e6573746564945d94285d944b01615d94284b025d944b036165658c067368617265"
    "64945d94285d944b07616817658c05666c6f61749447bfb999999999999a8c016594298c02667394284b04919475"
    "2e",
};

TEST(Pickle, GenericValuesInEveryProtocol) {
  for (int p = 0; p < 6; ++p) {
    SCOPED_TRACE("protocol " + std::to_string(p));
    const PickleValuePtr root = ParsePickle(FromHex(kGenericByProtocol[p]), "generic.pkl");
    ASSERT_EQ(root->type, Type::kDict);
    EXPECT_EQ(root->dict_items.size(), 16u);
    EXPECT_EQ(root->Find("none")->type, Type::kNone);
    ASSERT_EQ(root->Find("t")->type, Type::kBool);
    EXPECT_TRUE(root->Find("t")->bool_value);
    ASSERT_EQ(root->Find("f")->type, Type::kBool);
    EXPECT_FALSE(root->Find("f")->bool_value);
    EXPECT_EQ(root->Find("neg")->int_value, -5);
    EXPECT_EQ(root->Find("big")->int_value, int64_t{1} << 40);
    EXPECT_EQ(root->Find("neg_big")->int_value, -(int64_t{1} << 40));
    EXPECT_EQ(root->Find("max")->int_value, INT64_MAX);
    EXPECT_EQ(root->Find("min")->int_value, INT64_MIN);
    const PickleValuePtr tuple = root->Find("tuple");
    ASSERT_EQ(tuple->type, Type::kTuple);
    ASSERT_EQ(tuple->items.size(), 2u);
    EXPECT_EQ(tuple->items[0]->int_value, 1);
    EXPECT_EQ(tuple->items[1]->string_value, "x");
    const PickleValuePtr set = root->Find("set");
    ASSERT_EQ(set->type, Type::kSet);
    ASSERT_EQ(set->items.size(), 1u);
    EXPECT_EQ(set->items[0]->int_value, 3);
    const PickleValuePtr bytes = root->Find("bytes");
    ASSERT_EQ(bytes->type, Type::kBytes);
    EXPECT_EQ(bytes->string_value, std::string("\x00\xff", 2));
    const PickleValuePtr nested = root->Find("nested");
    ASSERT_EQ(nested->items.size(), 2u);
    EXPECT_EQ(nested->items[1]->items[1]->items[0]->int_value, 3);
    const PickleValuePtr shared = root->Find("shared");
    ASSERT_EQ(shared->items.size(), 2u);
    EXPECT_EQ(shared->items[0].get(), shared->items[1].get());  // memo keeps identity
    EXPECT_EQ(shared->items[0]->items[0]->int_value, 7);
    EXPECT_EQ(root->Find("float")->float_value, -0.1);
    EXPECT_EQ(root->Find("e")->type, Type::kTuple);
    EXPECT_TRUE(root->Find("e")->items.empty());
    ASSERT_EQ(root->Find("fs")->type, Type::kSet);
    EXPECT_EQ(root->Find("fs")->items[0]->int_value, 4);
  }
}

TEST(Pickle, ReadsTheFixtureGroundTruths) {
  for (const std::string name : {"golden", "random"}) {
    const std::string pkl = testing::TestDataPath("revisitop/gnd_" + name + ".pkl");
    const std::string json = testing::TestDataPath("revisitop/gnd_" + name + ".json");
    const RevisitopGroundTruth a = ReadRevisitopGroundTruth(pkl);
    const RevisitopGroundTruth b = ReadRevisitopGroundTruth(json);
    EXPECT_EQ(a.imlist, b.imlist);
    EXPECT_EQ(a.qimlist, b.qimlist);
    ASSERT_EQ(a.gnd.size(), b.gnd.size());
    for (size_t q = 0; q < a.gnd.size(); ++q) {
      for (int k = 0; k < 4; ++k) EXPECT_EQ(a.gnd[q].bbx[k], b.gnd[q].bbx[k]);
      EXPECT_EQ(a.gnd[q].easy, b.gnd[q].easy);
      EXPECT_EQ(a.gnd[q].hard, b.gnd[q].hard);
      EXPECT_EQ(a.gnd[q].junk, b.gnd[q].junk);
    }
  }
  const RevisitopGroundTruth golden =
      ReadRevisitopGroundTruth(testing::TestDataPath("revisitop/gnd_golden.pkl"));
  ASSERT_EQ(golden.imlist.size(), 8u);
  EXPECT_EQ(golden.imlist[7], "db_007");
  ASSERT_EQ(golden.qimlist.size(), 3u);
  EXPECT_EQ(golden.gnd[0].bbx[2], 200.5);
  EXPECT_EQ(golden.gnd[0].bbx[3], 300.25);
  EXPECT_EQ(golden.gnd[0].easy, (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(golden.gnd[2].junk, (std::vector<int64_t>{4}));
}

// NumPy arrays and scalars as numpy's __reduce__ pickles them (protocol 2, Python 3).
TEST(Pickle, NumpyArraysAndScalarsInGroundTruth) {
  for (const std::string module : {"numpy.core.multiarray", "numpy._core.multiarray"}) {
    testing::PickleWriter w;
    w.Proto(2).EmptyDict().Mark();
    w.Str("imlist").StrList({"x0", "x1", "x2", "x3"});
    w.Str("qimlist").StrList({"q0"});
    w.Str("gnd").EmptyList().Mark().EmptyDict().Mark();
    w.Str("bbx").NumpyArray1d("f8", 4, testing::RawBytes<double>({0.5, 1.5, 10.25, 20.0}), module);
    w.Str("easy").NumpyArray1d("i8", 2, testing::RawBytes<int64_t>({3, 1}), module);
    w.Str("hard").NumpyArray1d("i4", 1, testing::RawBytes<int32_t>({2}), module);
    // A list of NumPy scalars (e.g. from list(np.array)).
    w.Str("junk").EmptyList().Mark().NumpyScalar("i8", testing::RawBytes<int64_t>({0})).Appends();
    w.SetItems().Appends().SetItems().Stop();
    const RevisitopGroundTruth gt =
        RevisitopGroundTruthFromPickle(*ParsePickle(w.bytes(), "np.pkl"), "np.pkl");
    ASSERT_EQ(gt.gnd.size(), 1u);
    EXPECT_EQ(gt.gnd[0].bbx[0], 0.5);
    EXPECT_EQ(gt.gnd[0].bbx[2], 10.25);
    EXPECT_EQ(gt.gnd[0].easy, (std::vector<int64_t>{3, 1}));
    EXPECT_EQ(gt.gnd[0].hard, (std::vector<int64_t>{2}));
    EXPECT_EQ(gt.gnd[0].junk, (std::vector<int64_t>{0}));
  }
}

TEST(Pickle, NumpyArrayRecordedAsObject) {
  testing::PickleWriter w;
  w.Proto(2).NumpyArray1d("i8", 2, testing::RawBytes<int64_t>({5, 6})).Stop();
  const PickleValuePtr v = ParsePickle(w.bytes(), "a.pkl");
  ASSERT_TRUE(v->IsGlobal("numpy.core.multiarray", "_reconstruct"));
  EXPECT_TRUE(v->called);
  ASSERT_EQ(v->args->items.size(), 3u);
  EXPECT_TRUE(v->args->items[0]->IsGlobal("numpy", "ndarray"));
  ASSERT_TRUE(v->state);
  ASSERT_EQ(v->state->items.size(), 5u);
  EXPECT_EQ(v->state->items[4]->type, Type::kBytes);
  EXPECT_EQ(v->state->items[4]->string_value.size(), 16u);
}

TEST(Pickle, EveryTruncationOfARealFileIsAFormatError) {
  const std::string bytes =
      ReadFileToString(testing::TestDataPath("revisitop/gnd_golden.pkl"));
  for (size_t n = 0; n < bytes.size(); ++n) {
    SCOPED_TRACE("prefix of " + std::to_string(n) + " bytes");
    EXPECT_THROW(ParsePickle(bytes.substr(0, n), "cut.pkl"), FormatError);
  }
  EXPECT_NO_THROW(ParsePickle(bytes, "whole.pkl"));
  ExpectFormatError(bytes.substr(0, 100), {"test.pkl", "byte offset 99", "truncated"});
  ExpectFormatError(bytes.substr(0, 0), {"test.pkl", "empty"});
}

// Persistent ids (torch.save's storage references) are kept as kPersistent nodes holding the id;
// BINPERSID without an id on the stack is an error.
TEST(Pickle, PersistentIdsAreKeptForTheCaller) {
  const PickleValuePtr binary = ParsePickle(std::string("\x80\x02K\x07Q.", 6), "test.pkl");
  ASSERT_EQ(binary->type, PickleValue::Type::kPersistent);
  ASSERT_TRUE(binary->args);
  EXPECT_EQ(binary->args->int_value, 7);
  EXPECT_EQ(binary->TypeName(), "persistent id");
  const PickleValuePtr text = ParsePickle(std::string("Pstorage_3\n.", 12), "test.pkl");
  ASSERT_EQ(text->type, PickleValue::Type::kPersistent);
  EXPECT_EQ(text->args->string_value, "storage_3");
  ExpectFormatError(std::string("\x80\x02Q.", 4), {"stack underflow"});
}

TEST(Pickle, MalformedStreamsNameFileOffsetAndOpcode) {
  // Unknown opcode 0xff at offset 2.
  ExpectFormatError(std::string("\x80\x02\xff", 3), {"test.pkl", "offset 2", "0xff", "unknown"});
  // Unsupported protocol.
  ExpectFormatError(std::string("\x80\x06N.", 4), {"protocol 6"});
  // Memo key never stored.
  ExpectFormatError(std::string("\x80\x02h\x05.", 5), {"memo key 5", "offset 2", "'h'"});
  // Stack underflow: APPEND without a list.
  ExpectFormatError(std::string("\x80\x02" "a.", 4), {"stack underflow", "'a'"});
  // APPENDS without MARK.
  ExpectFormatError(std::string("\x80\x02]e.", 5), {"MARK"});
  // Appending to an int.
  ExpectFormatError(std::string("\x80\x02K\x01K\x02" "a.", 8), {"cannot append to a int"});
  // SETITEMS with an odd number of items.
  ExpectFormatError(std::string("\x80\x02}(K\x01u.", 8), {"odd number"});
  // Extension registry.
  ExpectFormatError(std::string("\x80\x02\x82\x01.", 5), {"extension"});
  // Integer beyond int64 (LONG1 of 9 significant bytes).
  ExpectFormatError(std::string("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.", 14),
                    {"int64"});
  ExpectFormatError(std::string("I99999999999999999999\n.", 23), {"64 bits"});
  // 2**63 as LONG1 (9 bytes, positive): out of range.
  ExpectFormatError(std::string("\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x80\x00.", 14),
                    {"int64"});
  // Length field larger than the data (would allocate 4 GB if trusted).
  ExpectFormatError(std::string("\x80\x02X\xff\xff\xff\xff" "abc.", 11), {"truncated"});
  ExpectFormatError(std::string("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f", 11),
                    {"frame"});
  // Text argument without newline.
  ExpectFormatError("I12", {"newline"});
  // Malformed integer / float literals.
  ExpectFormatError("I1x2\n.", {"malformed integer"});
  ExpectFormatError("F1.2.3\n.", {"malformed float"});
  // Calling a non-global.
  ExpectFormatError(std::string("\x80\x02K\x01)R.", 6), {"cannot call"});
  // Calling with non-tuple arguments.
  ExpectFormatError(std::string("\x80\x02" "cbuiltins\nset\nK\x01R.", 20), {"not a tuple"});
  // BUILD on a list.
  ExpectFormatError(std::string("\x80\x02]}b.", 6), {"BUILD on a list"});
  // Data after a structurally valid prefix but no STOP.
  ExpectFormatError(std::string("\x80\x02N", 3), {"STOP"});
}

// Issue 14, bad input 5: 2 M nested TUPLE1 opcodes (2 MB) used to overflow the stack in the
// destructor. The depth limit rejects them; the same file as a gnd is a FormatError naming it.
TEST(Pickle, DeeplyNestedContainersAreRejectedWithoutCrash) {
  const std::string deep = "\x80\x02N" + std::string(2000000, '\x85') + ".";
  ExpectFormatError(deep, {"test.pkl", "nest deeper than 1000 levels"});
  const std::string path = testing::TempDir() + "/deep_gnd.pkl";
  WriteFileAtomically(path, deep);
  try {
    ReadRevisitopGroundTruth(path);
    FAIL() << "no error";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("deep_gnd.pkl"), std::string::npos) << e.what();
  }
  // At the limit it parses (1000 containers: 999 TUPLE1 around an empty tuple).
  const PickleValuePtr ok = ParsePickle("\x80\x02)" + std::string(999, '\x85') + ".", "ok.pkl");
  EXPECT_EQ(ok->type, Type::kTuple);
  ExpectFormatError("\x80\x02)" + std::string(1000, '\x85') + ".", {"nest deeper"});
  // Nesting built through the memo after the fact (append list k+1 into list k) is found too.
  std::string chain = "\x80\x02";
  for (int k = 0; k < 1500; ++k) chain += "]r" + std::string(reinterpret_cast<const char*>(&k), 4);
  for (int k = 0; k + 1 < 1500; ++k) {
    const int next = k + 1;
    chain += "j" + std::string(reinterpret_cast<const char*>(&k), 4) + "j" +
             std::string(reinterpret_cast<const char*>(&next), 4) + "a0";
  }
  chain += "j" + std::string(4, '\0') + ".";
  ExpectFormatError(chain, {"nest deeper"});
}

// A list that contains itself (memo) is refused instead of leaking or looping in a reader.
TEST(Pickle, SelfReferenceIsRejected) {
  ExpectFormatError(FromHex("80025d71006800612e"), {"contains itself"});
  // A cycle that is garbage (popped) does not matter: the result is fine.
  const PickleValuePtr v = ParsePickle(FromHex("80025d7100680061304b052e"), "g.pkl");
  EXPECT_EQ(v->type, Type::kInt);
  EXPECT_EQ(v->int_value, 5);
  // Shared (non-cyclic) references are fine: [x, x].
  const PickleValuePtr shared = ParsePickle(FromHex("80025d285d71016801652e"), "s.pkl");
  ASSERT_EQ(shared->items.size(), 2u);
  EXPECT_EQ(shared->items[0], shared->items[1]);
}

// Issue 14, bad input 7: a 200k-key dict took > 80 s (quadratic duplicate-key search).
TEST(Pickle, LargeDictIsLinear) {
  std::string bytes = "\x80\x02}(";
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    bytes += "J" + std::string(reinterpret_cast<const char*>(&i), 4) + "K\x01";
  }
  // Repeated keys replace in place (Python semantics), also across SETITEMS.
  bytes += FromHex("75284a000000004b075801000000614b025801000000614b03752e");
  const auto start = std::chrono::steady_clock::now();
  const PickleValuePtr dict = ParsePickle(bytes, "big.pkl");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(dict->dict_items.size(), static_cast<size_t>(n) + 1);
  EXPECT_EQ(dict->dict_items[0].second->int_value, 7);
  EXPECT_EQ(dict->dict_items[n].second->int_value, 3);
  EXPECT_EQ(dict->Find("a")->int_value, 3);
  EXPECT_LT(seconds, 5.0);  // ~0.2 s; the quadratic version needed minutes
}

TEST(Pickle, ReadPickleMissingFileIsIoError) {
  EXPECT_THROW(ReadPickle(testing::TempDir() + "/missing.pkl"), IoError);
}

TEST(Pickle, GroundTruthContentErrors) {
  auto expect_error = [](const testing::PickleWriter& w, const std::string& fragment) {
    const std::string path = testing::TempDir() + "/bad_gnd.pkl";
    WriteFileAtomically(path, w.bytes());
    try {
      ReadRevisitopGroundTruth(path);
      FAIL() << "no error for " << fragment;
    } catch (const FormatError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("bad_gnd.pkl"), std::string::npos) << e.what();
    }
  };
  {  // Not a dict.
    testing::PickleWriter w;
    w.Proto(2).IntList({1}).Stop();
    expect_error(w, "not the dict");
  }
  {  // Missing key.
    testing::PickleWriter w;
    w.Proto(2).EmptyDict().Str("imlist").StrList({"a"}).SetItem().Stop();
    expect_error(w, "missing key 'qimlist'");
  }
  auto gnd_with = [](const std::vector<int64_t>& easy, const std::vector<double>& bbx,
                     int num_queries) {
    testing::PickleWriter w;
    w.Proto(2).EmptyDict().Mark();
    w.Str("imlist").StrList({"a", "b"});
    w.Str("qimlist").StrList(std::vector<std::string>(num_queries, "q"));
    w.Str("gnd").EmptyList().Mark().EmptyDict().Mark();
    w.Str("bbx").FloatList(bbx).Str("easy").IntList(easy).Str("hard").IntList({});
    w.Str("junk").IntList({});
    w.SetItems().Appends().SetItems().Stop();
    return w;
  };
  expect_error(gnd_with({0, 2}, {0, 0, 1, 1}, 1), "has id 2, outside imlist");
  expect_error(gnd_with({-1}, {0, 0, 1, 1}, 1), "has id -1");
  expect_error(gnd_with({0}, {0, 0, 1}, 1), "has 3 values, expected 4");
  expect_error(gnd_with({0}, {0, 0, 1, 1}, 2), "'gnd' has 1 entries but 'qimlist' has 2");
  {  // Ids that are strings.
    testing::PickleWriter w;
    w.Proto(2).EmptyDict().Mark();
    w.Str("imlist").StrList({"a"}).Str("qimlist").StrList({"q"});
    w.Str("gnd").EmptyList().Mark().EmptyDict().Mark();
    w.Str("bbx").FloatList({0, 0, 1, 1}).Str("easy").StrList({"0"});
    w.SetItems().Appends().SetItems().Stop();
    expect_error(w, "['easy'][0] is a str, not a number");
  }
  {  // Big-endian NumPy data.
    testing::PickleWriter w;
    w.Proto(2).EmptyDict().Mark();
    w.Str("imlist").StrList({"a"}).Str("qimlist").StrList({"q"});
    w.Str("gnd").EmptyList().Mark().EmptyDict().Mark();
    w.Str("bbx").FloatList({0, 0, 1, 1}).Str("easy");
    w.Global("numpy.core.multiarray", "_reconstruct").Global("numpy", "ndarray").Int(0).Tuple1();
    w.BytesProtocol2("b").Tuple3().Reduce();
    w.Mark().Int(1).Int(1).Tuple1().Dtype("i8", ">").Bool(false);
    w.BytesProtocol2(std::string(8, '\0')).Tuple().Build();
    w.SetItems().Appends().SetItems().Stop();
    expect_error(w, "big-endian");
  }
  {  // JSON that is not the expected structure.
    const std::string path = testing::TempDir() + "/bad_gnd.json";
    WriteFileAtomically(path, "{\"imlist\": [1, 2], \"qimlist\": [], \"gnd\": []}");
    EXPECT_THROW(ReadRevisitopGroundTruth(path), FormatError);
    WriteFileAtomically(path, "{\"imlist\": [");
    EXPECT_THROW(ReadRevisitopGroundTruth(path), FormatError);
  }
}

}  // namespace
}  // namespace megaloc
